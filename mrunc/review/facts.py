"""A plan as security facts, grouped by concern: what the ops will do, each with its config pointer and ops.

Audit evaluates controls on these facts and diff compares them, so both speak about the plan, not the config.
Paths that differ between equal containers (the rootfs, the cgroup path) are replaced by <rootfs>/<cgroup> in
the values, and reported once as their own facts.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from mrunc.executor.flags import CAPABILITIES, NAMESPACE_FLAGS

CONCERNS = ("namespaces", "mounts", "devices", "capabilities", "seccomp", "cgroups", "process", "hooks")
CAP_KINDS = ("bounding", "effective", "permitted", "inheritable", "ambient")
CGROUP_ROOT = "/sys/fs/cgroup"
# Ops that only carry out the protocol or follow from facts listed elsewhere.
STRUCTURAL = {"fork", "fork_init", "cgroup_enter", "cgroup_open_tasks", "cgroup_join_self", "cgroup_attach",
              "cgroup_joined", "become_ns_root", "keep_caps", "cgroup_copy_parent", "loopback_up", "netdev_check",
              "default_signals"}
FLAG_NAMESPACES = {flag: kind for kind, flag in NAMESPACE_FLAGS.items()}
MOUNT_SRC = re.compile(r"^/mounts/\d+$")


@dataclass(frozen=True)
class Fact:
    concern: str
    key: str
    value: Any
    src: str  # JSON pointer into the config
    ops: tuple[int, ...]  # indexes into plan["ops"]


class Model:
    """The facts of one plan, in plan order within each concern."""

    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.ops: list[dict] = plan["ops"]
        self.rootfs = next((o["args"]["root"] for o in self.ops if o["op"] in ("pivot_root", "chroot")), None)
        self.cgroup_path = _cgroup_path(self.ops, plan.get("host", {}))
        self.facts: list[Fact] = []
        self.claimed: set[int] = set()  # ops a concern has accounted for
        for extract in (_namespaces, _mounts, _devices, _capabilities, _seccomp, _cgroups, _process, _rest):
            extract(self)

    def add(self, concern: str, key: str, value: Any, src: str, ops: tuple[int, ...] | list[int]) -> None:
        self.facts.append(Fact(concern, key, value, src, tuple(ops)))
        self.claimed.update(ops)

    def get(self, concern: str, key: str) -> Fact | None:
        return next((f for f in self.facts if f.concern == concern and f.key == key), None)

    def of(self, concern: str) -> list[Fact]:
        return [f for f in self.facts if f.concern == concern]

    def uncovered(self) -> list[str]:
        """The ops no fact covers (protocol ops, the rootfs self-bind), normalized and sorted."""
        covered = {i for f in self.facts for i in f.ops}
        return sorted(json.dumps(self.normal(o), sort_keys=True) for i, o in enumerate(self.ops) if i not in covered)

    def indexed(self, *names: str) -> list[tuple[int, dict]]:
        return [(i, o) for i, o in enumerate(self.ops) if o["op"] in names]

    def normal(self, value: Any) -> Any:
        """The value with this container's rootfs, bundle and cgroup path replaced by placeholders."""
        if isinstance(value, str):
            for path, name in ((self.rootfs, "<rootfs>"), (self.plan.get("bundle"), "<bundle>")):
                if isinstance(path, str) and path and value.startswith(path):
                    value = name + value[len(path):]
            if self.cgroup_path and value.startswith(CGROUP_ROOT) and self.cgroup_path in value:
                value = value.replace(self.cgroup_path, "/<cgroup>")
            return value
        if isinstance(value, list):
            return [self.normal(v) for v in value]
        if isinstance(value, dict):
            return {k: self.normal(v) for k, v in value.items()}
        return value


def _cgroup_path(ops: list[dict], host: dict) -> str | None:
    first = next((o["args"]["dir"] for o in ops if o["op"] == "cgroup_mkdir"), None)
    if first is None:
        return None
    rest = first[len(CGROUP_ROOT):]
    return rest if host.get("cgroup") == "v2" else "/" + "/".join(rest.split("/")[2:])


def _namespaces(m: Model) -> None:
    """Each namespace type: new, joined <path>, or host (neither created nor joined)."""
    found: dict[str, tuple[str, str, list[int]]] = {}
    for i, o in m.indexed("setns", "unshare"):
        if o["op"] == "setns":
            found[o["args"]["type"]] = (f"joined {o['args']['path']}", o["src"], [i])
        else:
            for flag in o["args"]["flags"]:
                found[FLAG_NAMESPACES[flag]] = ("new", o["src"], [i])
    for kind in NAMESPACE_FLAGS:
        value, src, ops = found.get(kind, ("host", "/linux/namespaces", []))
        m.add("namespaces", kind, value, src, ops)
    for i, o in m.indexed("write_id_map"):
        m.add("namespaces", o["args"]["file"], o["args"]["content"], o["src"], [i])
    for i, o in m.indexed("set_time_offsets"):
        m.add("namespaces", "time offsets", o["args"]["content"], o["src"], [i])


def _mounts(m: Model) -> None:
    """Rootfs, then each config mount (all its ops, in listed order), read-only and masked paths."""
    for i, o in m.indexed("pivot_root", "chroot"):
        m.add("mounts", "rootfs", {"path": o["args"]["root"], "by": o["op"]}, o["src"], [i])
    for i, o in enumerate(m.ops):
        if o["op"] == "mount" and o["src"] == "/linux/rootfsPropagation":  # before pivot_root, then the rootfs's
            pivoted = any(p["op"] == "pivot_root" for p in m.ops[:i])
            m.add("mounts", "rootfs propagation" if pivoted else "/ propagation", o["args"]["flags"], o["src"], [i])
        elif o["op"] == "mount_parent_private":
            m.claimed.add(i)  # keeps the rootfs bind of an rshared / off the host: part of "/ propagation"
        elif o["op"] == "mount" and o["src"] == "/root/path":
            m.claimed.add(i)  # the rootfs bound onto itself: pivot_root's precondition
        elif o["op"] == "remount" and o["src"] == "/root/readonly":
            m.add("mounts", "rootfs read-only", True, o["src"], [i])
    groups: dict[str, list[int]] = {}
    for i, o in m.indexed("mount", "remount", "tmpfs_copyup"):
        if MOUNT_SRC.match(o["src"]):
            groups.setdefault(o["src"], []).append(i)
    seen: dict[str, int] = {}
    for src, indexes in groups.items():
        target = m.ops[indexes[0]]["args"]["target"]
        seen[target] = seen.get(target, 0) + 1
        key = f"mount {target}" + (f" #{seen[target]}" if seen[target] > 1 else "")
        value = [m.normal({"op": m.ops[i]["op"], **{k: v for k, v in m.ops[i]["args"].items() if k != "root"}})
                 for i in indexes]
        m.add("mounts", key, value, src, indexes)
    for i, o in m.indexed("readonly_path"):
        m.add("mounts", f"read-only {o['args']['path']}", True, o["src"], [i])
    for i, o in m.indexed("mask_path"):
        m.add("mounts", f"masked {o['args']['path']}", True, o["src"], [i])


def _devices(m: Model) -> None:
    """Device nodes (made, or bound from the host in a user namespace), /dev symlinks, host network interfaces
    moved in, cgroup device rules."""
    for i, o in enumerate(m.ops):
        a = o["args"]
        if o["op"] == "mknod":
            m.add("devices", f"node {a['path']}", {k: a[k] for k in ("type", "major", "minor", "mode", "uid", "gid")},
                  o["src"], [i])
        elif o["op"] == "mount" and o["src"].startswith("/linux/devices"):
            m.add("devices", f"node {a['target']}", {"bind": a["source"]}, o["src"], [i])
        elif o["op"] == "symlink":
            m.add("devices", f"symlink {a['link']}", a["target"], o["src"], [i])
        elif o["op"] == "netdev_move":
            m.add("devices", f"network device {a['device']}", {"name": a["name"]}, o["src"], [i])
    rules = [(i, o) for i, o in m.indexed("cgroup_write") if o["args"]["file"] in ("devices.allow", "devices.deny")]
    if rules:
        value = [f"{o['args']['file'].split('.')[1]} {o['args']['value']}" for _, o in rules]
        m.add("devices", "cgroup rules", value, "/linux/resources/devices", [i for i, _ in rules])
    for i, o in m.indexed("cgroup_device_filter"):  # v2: v1's merged rules, the default last: put it first, as v1's
        rules = [r.split("  # ")[0] for r in o["args"]["rules"]]
        m.add("devices", "cgroup rules", rules[-1:] + rules[:-1], o["src"], [i])


def _capabilities(m: Model) -> None:
    """Each capability in each set. Without a capabilities section the process keeps what mrunc has (all)."""
    everything = sorted(CAPABILITIES)
    sets: dict[str, tuple[list[str], str, list[int]]] = {
        "bounding": (everything, "/process/capabilities", []),
        "effective": (everything, "/process/capabilities", []),
        "permitted": (everything, "/process/capabilities", []),
    }
    for i, o in m.indexed("drop_bounding"):
        sets["bounding"] = (o["args"]["keep"], o["src"], [i])
    for i, o in m.indexed("capset"):
        for kind in ("effective", "permitted", "inheritable"):
            sets[kind] = (o["args"][kind], o["src"], [i])
    for i, o in m.indexed("ambient_raise"):
        sets["ambient"] = (o["args"]["caps"], o["src"], [i])
    for kind in CAP_KINDS:
        caps, src, ops = sets.get(kind, ([], "/process/capabilities", []))
        for cap in caps:
            m.add("capabilities", f"{kind} {cap}", True, src, ops)


def _seccomp(m: Model) -> None:
    """The filter: its default action, architectures, flags, and each syscall's rules (from its pfc text)."""
    from mrunc.review.bpf import parse_pfc

    for i, o in m.indexed("seccomp_load"):
        pfc = parse_pfc(o["args"]["pfc"])
        m.add("seccomp", "filter", "loaded", o["src"], [i])
        m.add("seccomp", "default action", pfc.default, o["src"], [i])
        m.add("seccomp", "flags", sorted(o["args"]["flags"]), o["src"], [i])
        for arch in sorted(pfc.arches):
            m.add("seccomp", f"arch {arch}", True, o["src"], [i])
        for name, rules in sorted(pfc.rules.items()):
            m.add("seccomp", f"syscall {name}", rules, o["src"], [i])


def _cgroups(m: Model) -> None:
    dirs = [(i, o["args"]["dir"]) for i, o in m.indexed("cgroup_mkdir")]
    if dirs:
        m.add("cgroups", "path", m.cgroup_path, "/linux/cgroupsPath", [i for i, _ in dirs])
        m.add("cgroups", "controllers", [m.normal(d) for _, d in dirs], "/linux/cgroupsPath", [])
    for i, o in m.indexed("cgroup_require"):  # a controller the host lacks: the container will be refused
        m.add("cgroups", f"requires controller {o['args']['controller']}", m.normal(o["args"]["dir"]), o["src"], [i])
    for i, o in m.indexed("cgroup_write"):  # a resource keyed by its config field, so v1 and v2 files compare
        a = o["args"]
        if a["file"] in ("devices.allow", "devices.deny"):
            continue
        resource = o["src"].startswith("/linux/resources/")
        key = o["src"].removeprefix("/linux/resources/") if resource else f"{a['file']} in {m.normal(a['dir'])}"
        m.add("cgroups", key, a["value"], o["src"], [i])


def _process(m: Model) -> None:
    keys = {"sethostname": "hostname", "setdomainname": "domainname", "oom_score_adj": "oom_score_adj",
            "umask": "umask", "close_fds": "preserved fds", "apparmor_profile": "apparmor profile",
            "selinux_exec_label": "selinux label", "personality": "personality"}
    # facts that are all of the op's arguments
    whole = {"sched_setattr": "scheduler", "ioprio_set": "io priority", "set_mempolicy": "memory policy"}
    for i, o in enumerate(m.ops):
        a = o["args"]
        if o["op"] == "set_ids":
            for key, arg in (("uid", "uid"), ("gid", "gid"), ("additional gids", "additional_gids")):
                m.add("process", key, a[arg], o["src"], [i])
        elif o["op"] == "no_new_privs":
            m.add("process", "no_new_privs", True, o["src"], [i])
        elif o["op"] == "setrlimit":
            m.add("process", f"rlimit {a['type']}", [a["soft"], a["hard"]], o["src"], [i])
        elif o["op"] == "sysctl":
            m.add("process", f"sysctl {a['key']}", a["value"], o["src"], [i])
        elif o["op"] == "chdir":
            m.add("process", "cwd" if a["must"] else "cwd (before the id change)", a["path"], o["src"], [i])
        elif o["op"] == "execve":
            m.add("process", "args", a["args"], o["src"], [i])
            m.add("process", "env", a["env"], o["src"], [i])
        elif o["op"] in whole:
            m.add("process", whole[o["op"]], a, o["src"], [i])
        elif o["op"] == "sched_setaffinity":
            m.add("process", f"cpu affinity ({o['src'].rsplit('/', 1)[1]})", a["cpus"], o["src"], [i])
        elif o["op"] in keys:
            m.add("process", keys[o["op"]], next(iter(a.values())), o["src"], [i])


def _rest(m: Model) -> None:
    """Hooks, and any op no concern above claims (so a diff can never miss one): by op name and source."""
    for i, o in enumerate(m.ops):
        if i in m.claimed or o["op"] in STRUCTURAL:
            continue
        concern = "hooks" if "hook" in o["op"] else "process"
        m.add(concern, f"{o['op']} {o['src']}", m.normal(o["args"]), o["src"], [i])
