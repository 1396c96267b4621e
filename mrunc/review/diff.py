"""A semantic diff of two plans: their facts compared by concern, each change labelled by what it does to the
container's privilege (raising, lowering, not changing), with the config pointers on both sides.

Facts are keyed, so an order the plan does not depend on cannot show up; the one order that matters, the
mount list, is compared on its own (a reordered mount can shadow another).
"""

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from mrunc.review.facts import CONCERNS, Fact, Model

RAISING, LOWERING, SAME = "raising", "lowering", "not changing"
PERMISSIVE = {"ALLOW": 3, "LOG": 3, "TRACE": 2, "TRAP": 1, "NOTIFY": 1}  # other actions deny: 0
# Resources (keys under /linux/resources) whose bigger value, or none (no limit), gives the container more.
LIMITS = re.compile(r"^(memory/(limit|swap)|pids/limit|cpu/quota|hugepageLimits/\d+|blockIO/throttle.*)$")
PROTECTIVE_FLAGS = {"MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC"}


@dataclass(frozen=True)
class Change:
    concern: str
    key: str
    kind: str  # added, removed, changed, reordered
    old: Any
    new: Any
    label: str
    src_a: str | None
    src_b: str | None
    ops_a: list[int]
    ops_b: list[int]


def diff(a: dict, b: dict) -> list[Change]:
    ma, mb = Model(a), Model(b)
    fa = {(f.concern, f.key): f for f in ma.facts}
    fb = {(f.concern, f.key): f for f in mb.facts}
    changes = []
    for key in [*fa, *(k for k in fb if k not in fa)]:
        old, new = fa.get(key), fb.get(key)
        if old and new and _same(ma, old, mb, new):
            continue
        kind = "changed" if old and new else "removed" if old else "added"
        changes.append(Change(key[0], key[1], kind, old and old.value, new and new.value,
                              _label(key[0], key[1], old, new, ma, mb), old and old.src, new and new.src,
                              list(old.ops) if old else [], list(new.ops) if new else []))
    changes = _collapse_filter(changes, ma, mb)
    changes += _reordered_mounts(ma, mb)
    if not changes and ma.uncovered() != mb.uncovered():
        # An op no fact covers (a protocol op) differs: say so rather than call the plans the same.
        changes.append(Change("process", "other ops", "changed", None, None, SAME, None, None, [], []))
    return sorted(changes, key=lambda c: CONCERNS.index(c.concern))


def _collapse_filter(changes: list[Change], ma: Model, mb: Model) -> list[Change]:
    """A filter on one side only is one change (with its rule count), not one change per syscall and arch."""
    if bool(ma.get("seccomp", "filter")) == bool(mb.get("seccomp", "filter")):
        return changes
    rules = [c for c in changes if c.concern == "seccomp" and c.key.startswith(("syscall ", "arch "))]
    if not rules:
        return changes
    c = rules[0]
    summary = f"{sum(r.key.startswith('syscall ') for r in rules)} syscalls with rules"
    whole = Change("seccomp", "rules", c.kind, c.kind == "removed" and summary or None,
                   c.kind == "added" and summary or None, SAME, c.src_a, c.src_b, c.ops_a, c.ops_b)
    return [x for x in changes if x not in rules] + [whole]


def _same(ma: Model, old: Fact, mb: Model, new: Fact) -> bool:
    if (old.concern, old.key) in (("mounts", "rootfs"), ("cgroups", "path")):
        return old.value == new.value
    return ma.normal(old.value) == mb.normal(new.value)


def _reordered_mounts(ma: Model, mb: Model) -> list[Change]:
    def order(m: Model) -> list[Fact]:
        return [f for f in m.of("mounts") if f.key.startswith("mount ")]

    a, b = order(ma), order(mb)
    common = {f.key for f in a} & {f.key for f in b}
    seq_a, seq_b = [f.key for f in a if f.key in common], [f.key for f in b if f.key in common]
    if seq_a == seq_b:
        return []
    moved = [(x, y) for i, x in enumerate(seq_a) for y in seq_a[i + 1:] if seq_b.index(x) > seq_b.index(y)]
    # Order matters where one destination lies under (or is) the other: the later mount shadows.
    overlapping = any(_nested(x[6:], y[6:]) for x, y in moved)
    return [Change("mounts", "order", "reordered", seq_a, seq_b, RAISING if overlapping else SAME,
                   "/mounts", "/mounts", [i for f in a for i in f.ops], [i for f in b for i in f.ops])]


def _nested(x: str, y: str) -> bool:
    x, y = x.split(" #")[0].rstrip("/") + "/", y.split(" #")[0].rstrip("/") + "/"
    return x.startswith(y) or y.startswith(x)


def _label(concern: str, key: str, old: Fact | None, new: Fact | None, ma: Model, mb: Model) -> str:
    """raising / lowering / not changing: what going from `old` to `new` does to the container's privilege."""
    if concern == "namespaces" and key in ("uid_map", "gid_map", "time offsets"):
        return SAME
    if concern == "namespaces":
        return _compare(_ns_rank(old), _ns_rank(new))
    if concern == "seccomp":
        return _seccomp_label(key, old, new, ma, mb)
    if concern == "cgroups":
        return _compare(_limit(old), _limit(new)) if LIMITS.match(key) else SAME
    if concern == "mounts":
        return _mount_label(key, old, new)
    if concern == "devices":
        return _devices_label(key, old, new)
    if concern == "process":
        return _process_label(key, old, new)
    if concern in ("capabilities", "hooks"):  # a capability held; a hook (runs as root on the host)
        return _presence(old, new)
    return SAME


def _compare(old: float, new: float) -> str:
    return RAISING if new > old else LOWERING if new < old else SAME


def _presence(old: Fact | None, new: Fact | None) -> str:
    """Having more of it raises privilege: added raises, removed lowers, changed raises (it may do anything)."""
    return RAISING if new else LOWERING


def _ns_rank(f: Fact | None) -> int:
    value = f.value if f else "host"
    return 2 if value == "host" else 1 if value.startswith("joined") else 0


def _seccomp_label(key: str, old: Fact | None, new: Fact | None, ma: Model, mb: Model) -> str:
    if key == "filter":
        return LOWERING if new else RAISING
    if key.startswith("arch "):  # a listed arch's syscalls run (filtered); an unlisted one is killed
        return _presence(old, new)
    if key == "default action":
        return _compare(_permissive(old.value if old else "ALLOW"), _permissive(new.value if new else "ALLOW"))
    if key.startswith("syscall "):
        return _compare(_syscall(old, ma), _syscall(new, mb))
    return SAME


def _permissive(action: str) -> int:
    return PERMISSIVE.get(action.split("(")[0], 0)


def _syscall(f: Fact | None, m: Model) -> float:
    """How permissive a syscall's rules are: its most permissive action, or the default without rules."""
    if f is None:
        default = m.get("seccomp", "default action")
        return _permissive(default.value) if default else 3
    return max((_permissive(rule.rsplit("action ", 1)[1].rstrip(";")) for rule in f.value if "action " in rule),
               default=0)


def _limit(f: Fact | None) -> float:
    if f is None or f.value in ("max", "-1"):
        return float("inf")
    try:  # "50000 100000" (cpu.max), "8:0 1048576" (a throttle): the number that bounds
        return float(str(f.value).split()[-1] if ":" in str(f.value) else str(f.value).split()[0])
    except (ValueError, IndexError):  # not a number: treat as no limit, the conservative reading
        return float("inf")


def _mount_label(key: str, old: Fact | None, new: Fact | None) -> str:
    if key.startswith(("masked ", "read-only ")) or key == "rootfs read-only":
        return LOWERING if new else RAISING
    if key == "/ propagation":
        return _compare(sharing(old.value if old else []), sharing(new.value if new else []))
    if not key.startswith("mount "):
        return SAME
    if not old or not new:
        binds = any("MS_BIND" in o.get("flags", []) for o in (new or old).value)
        return (RAISING if new else LOWERING) if binds else SAME
    flags_old, flags_new = _flags(old), _flags(new)
    if PROTECTIVE_FLAGS & (flags_old - flags_new):
        return RAISING
    shared = _compare(mount_sharing(old.value), mount_sharing(new.value))
    if shared != SAME:  # rslave/rshared on a host path: the host's mounts reach the container, or both ways
        return shared
    sources = [[o.get("source") for o in f.value] for f in (old, new)]
    if sources[0] != sources[1]:
        return RAISING  # a different thing mounted: review it
    return LOWERING if PROTECTIVE_FLAGS & (flags_new - flags_old) else SAME


def sharing(flags: list[str]) -> int:
    """How much a propagation change shares with the mount's peers (the host's, for what came from the host):
    0 rprivate/runbindable, 1 private (mounts below keep theirs), 2 slave, 3 rslave, 4 shared, 5 rshared."""
    kind = 2 if "MS_SHARED" in flags else 1 if "MS_SLAVE" in flags else 0
    recursive = "MS_REC" in flags
    return kind * 2 + (recursive if kind else not recursive and bool(flags))


def mount_sharing(ops: list[dict]) -> int:
    """The sharing of a config mount's propagation ops (none: the rprivate / it was made under)."""
    changes = [o["flags"] for o in ops if o["op"] == "mount" and not o.get("source") and not o.get("fstype")]
    return max((sharing(flags) for flags in changes), default=0)


def _compare(old: int, new: int) -> str:
    return RAISING if new > old else LOWERING if new < old else SAME


def _flags(f: Fact) -> set[str]:
    return {flag for o in f.value for flag in o["flags"]}


def _devices_label(key: str, old: Fact | None, new: Fact | None) -> str:
    if key.startswith("symlink "):
        return SAME
    if key == "cgroup rules":
        allowed_old, allowed_new = _allowed(old), _allowed(new)
        if allowed_new == allowed_old:
            return SAME
        return LOWERING if allowed_new < allowed_old else RAISING
    return _presence(old, new)


def _allowed(f: Fact | None) -> set[str]:
    """What a device rule list lets through: 'all', or the allow rules after the last deny-all."""
    rules = f.value if f else []
    allowed: set[str] = {"all"}
    for rule in rules:
        if rule == "deny a":
            allowed = set()
        elif rule == "allow a":
            allowed = {"all"}
        elif rule.startswith("allow "):
            allowed.add(rule[6:])
    return allowed


def _process_label(key: str, old: Fact | None, new: Fact | None) -> str:
    if key in ("uid", "gid"):
        return _compare(_is_root(old), _is_root(new))
    if key == "additional gids":
        return _compare(0 in (old.value if old else []), 0 in (new.value if new else []))
    if key == "no_new_privs":
        return LOWERING if new else RAISING
    if key.startswith("rlimit "):
        return _compare(max(old.value) if old else float("inf"), max(new.value) if new else float("inf"))
    if key.startswith("sysctl "):
        return _presence(old, new)
    if key == "preserved fds":
        return _compare(old.value if old else 0, new.value if new else 0)
    if key == "scheduler":
        return _compare(_cpu_claim(old), _cpu_claim(new))
    if key == "io priority":  # the realtime class needs CAP_SYS_ADMIN and can starve the host's I/O
        return _compare(_realtime_io(old), _realtime_io(new))
    return SAME


def _cpu_claim(f: Fact | None) -> int:
    """How much CPU a scheduler setting can take from the host: a realtime policy (needs CAP_SYS_NICE, can starve
    others), a nice below 0 (also CAP_SYS_NICE), or neither."""
    if f is None:
        return 0
    return 2 if f.value["policy"] in ("SCHED_FIFO", "SCHED_RR", "SCHED_DEADLINE") else int(f.value["nice"] < 0)


def _realtime_io(f: Fact | None) -> bool:
    return f is not None and f.value["io_class"] == "IOPRIO_CLASS_RT"


def _is_root(f: Fact | None) -> bool:
    return f is None or f.value == 0


GROUP_AT = 3  # this many changes of one kind to one set read as one line
# The sets whose items are alike enough to be read as one list; a mount is not grouped: each binds something else.
GROUPED = {("capabilities", kind) for kind in ("bounding", "effective", "permitted", "inheritable", "ambient")} | {
    ("seccomp", "syscall"), ("seccomp", "arch"), ("devices", "node"), ("devices", "symlink"),
    ("mounts", "masked"), ("mounts", "read-only")}


@dataclass(frozen=True)
class Group:
    """Changes of one kind and label to the items of one set (the first word of their keys: `bounding`,
    `syscall`, `node`), shown as one line; json lists every item."""
    concern: str
    set: str
    kind: str
    label: str
    items: list[str]
    src_a: str | None
    src_b: str | None
    ops_a: list[int]
    ops_b: list[int]


def grouped(changes: list[Change]) -> list[Change | Group]:
    """The changes in order, those that share concern, set, kind and label merged where GROUP_AT or more do."""
    def set_of(c: Change) -> tuple[str, str, str, str]:
        return c.concern, c.key.split(" ", 1)[0], c.kind, c.label

    members: dict[tuple[str, str, str, str], list[Change]] = {}
    for c in changes:
        members.setdefault(set_of(c), []).append(c)
    rows: list[Change | Group] = []
    for c in changes:
        same = members[set_of(c)]
        if len(same) < GROUP_AT or set_of(c)[:2] not in GROUPED:
            rows.append(c)
        elif c is same[0]:
            rows.append(Group(c.concern, set_of(c)[1], c.kind, c.label, [x.key.split(" ", 1)[1] for x in same],
                              _common([x.src_a for x in same]), _common([x.src_b for x in same]),
                              sorted({i for x in same for i in x.ops_a}), sorted({i for x in same for i in x.ops_b})))
    return rows


def _common(pointers: list[str | None]) -> str | None:
    """The pointer all of them lie under (/linux/maskedPaths for /linux/maskedPaths/0 ... /9)."""
    if None in pointers:
        return None
    parts = [p.split("/") for p in pointers if p is not None]
    common = [level[0] for level in zip(*parts, strict=False) if len(set(level)) == 1]
    return "/".join(common) or "/"


def render(changes: list[Change], fmt: str, names: tuple[str, str]) -> str:
    return {"text": _text, "json": _json, "markdown": _markdown}[fmt](changes, names)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _sides(c: Change | Group) -> str:
    a = f"{c.src_a} ({_ops(c.ops_a)})" if c.src_a else "-"
    b = f"{c.src_b} ({_ops(c.ops_b)})" if c.src_b else "-"
    return f"A {a}  B {b}"


def _items(g: Group) -> str:
    return f"{len(g.items)} items: {_show(' '.join(g.items))}"


def _text(changes: list[Change], names: tuple[str, str]) -> str:
    raising = sum(c.label == RAISING for c in changes)
    lines = [f"diff A={names[0]} B={names[1]}: {len(changes)} changes, {raising} raising privilege"]
    rows = grouped(changes)
    for concern in CONCERNS:
        group = [r for r in rows if r.concern == concern]
        if group:
            lines += ["", f"{concern}:"]
        for r in group:
            if isinstance(r, Group):
                lines.append(f"  [{r.label}] {r.kind} {r.set}: {_items(r)}")
            else:
                lines.append(f"  [{r.label}] {r.kind} {r.key}: {_show(r.old) if r.old is not None else '-'} -> "
                             f"{_show(r.new) if r.new is not None else '-'}")
            lines.append(f"      {_sides(r)}")
    return "\n".join(lines) + "\n"


def _json(changes: list[Change], names: tuple[str, str]) -> str:
    groups = [asdict(r) for r in grouped(changes) if isinstance(r, Group)]
    return json.dumps({"a": names[0], "b": names[1], "changes": [asdict(c) for c in changes], "groups": groups},
                      indent=1) + "\n"


def _markdown(changes: list[Change], names: tuple[str, str]) -> str:
    raising = sum(c.label == RAISING for c in changes)
    lines = [f"### mrunc diff: `{names[0]}` → `{names[1]}`", "",
             f"{len(changes)} changes, **{raising} raising privilege**.", ""]
    if changes:
        lines += ["| Concern | Privilege | Change | Was | Now | Config A | Config B |", "|---|---|---|---|---|---|---|"]
        for r in grouped(changes):
            label = f"**{r.label}**" if r.label == RAISING else r.label
            if isinstance(r, Group):
                items = _md(_items(r))
                change, old, new = f"{r.kind} `{r.set}`", *((items, "-") if r.kind == "removed" else ("-", items))
            else:
                change, old, new = f"{r.kind} `{r.key}`", _md(r.old), _md(r.new)
            cells = [r.concern, label, change, old, new, f"`{r.src_a or '-'}`", f"`{r.src_b or '-'}`"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    return "-" if value is None else "`" + _show(value).replace("|", "\\|").replace("`", "'") + "`"


def _ops(ops: list[int]) -> str:
    return "ops " + ", ".join(map(str, ops)) if ops else "no op"
