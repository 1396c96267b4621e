"""Verify a plan without running it: its structure (the executor's own checks), the order rules it must keep,
its seccomp BPF against its pseudo-filter text, and, when the bundle's config is at hand and unchanged, that
recompiling the config gives exactly these ops (so a plan edited by hand to skip an op is caught)."""

import difflib
import json
import os
from dataclasses import dataclass, field

from mrunc.review.bpf import BpfError, check_matches

# check_program first: it must read the program while init may still read any file (CVE-2019-5736).
CREDENTIAL_ORDER = ("check_program", "drop_bounding", "keep_caps", "set_ids", "capset", "ambient_raise",
                    "no_new_privs")
CAPABILITY_GROUP = ("drop_bounding", "keep_caps", "capset")
ONCE = ("fork", "fork_init", "check_program", "set_ids", "close_fds", "recheck_program", "execve")
# The ops that make a container a container rather than a process with the host's privileges: removing any of them
# from a plan must not pass unnoticed (tests/test_plan_contract.py removes each from every golden plan).
SECURITY_OPS = ("seccomp_load", "drop_bounding", "keep_caps", "capset", "no_new_privs", "mask_path", "readonly_path",
                "set_ids", "pivot_root", "remount")


@dataclass
class Result:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify(plan: object, config: bytes | None = None) -> Result:
    """`config`: the config a reviewer approved, to verify against instead of the bundle's config.json."""
    from mrunc.executor.plan import PlanError, check_structure

    result = Result()
    try:
        check_structure(plan)
    except PlanError as e:
        result.problems.append(str(e))
        return result
    assert isinstance(plan, dict)
    result.problems += _order_rules(plan["ops"]) + _seccomp_filters(plan["ops"])
    if not result.problems:
        _after_the_filter(plan, result)
    _against_config(plan, result, config)
    return result


def _positions(ops: list[dict]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for i, o in enumerate(ops):
        found.setdefault(o["op"], []).append(i)
    return found


def _order_rules(ops: list[dict]) -> list[str]:
    at = _positions(ops)
    problems = [f"/ops: {name} appears {len(at.get(name, []))} times; a plan has it once"
                for name in ONCE if len(at.get(name, [])) != 1]
    roots = at.get("pivot_root", []) + at.get("chroot", [])
    if len(roots) != 1:
        return problems + [f"/ops: {len(roots)} pivot_root/chroot ops; a plan changes root exactly once"]
    root = roots[0]
    problems += [f"/ops/{i}: {ops[i]['op']} into the rootfs after pivot_root (op {root})"
                 for i, o in enumerate(ops) if o["op"] in ("mount", "tmpfs_copyup", "mknod", "symlink") and i > root
                 and not _rootfs_propagation(o)]
    problems += [f"/ops/{i}: {ops[i]['op']} before pivot_root (op {root}); it must act on the container's view"
                 for name in ("readonly_path", "mask_path", "sysctl", "sethostname") for i in at.get(name, [])
                 if i < root]
    steps = [(name, at[name][0]) for name in CREDENTIAL_ORDER if name in at]
    problems += [f"/ops/{i}: {name} comes after {before} (op {j}); the order is {' -> '.join(CREDENTIAL_ORDER)}"
                 for (before, j), (name, i) in zip(steps, steps[1:], strict=False) if i < j]
    present = [name for name in CAPABILITY_GROUP if name in at]
    if present and len(present) != len(CAPABILITY_GROUP):
        missing = sorted(set(CAPABILITY_GROUP) - set(present))
        problems.append(f"/ops: {', '.join(present)} without {', '.join(missing)}: the capability drop is incomplete")
    return problems + _seccomp_place(at) + _netdev_place(ops, at)


def _rootfs_propagation(o: dict) -> bool:
    """rootfsPropagation's change of the rootfs mount itself, which is / only after the root change: no mount."""
    a = o["args"]
    return (o["op"] == "mount" and o["src"] == "/linux/rootfsPropagation" and a["target"] == "/" and not a["source"]
            and set(a["flags"]) <= {"MS_SHARED", "MS_SLAVE", "MS_PRIVATE", "MS_UNBINDABLE", "MS_REC"})


def _seccomp_place(at: dict[str, list[int]]) -> list[str]:
    """Rule 8: with no_new_privs, seccomp loads after it (just before execve); without, before the capability
    drop (loading then needs CAP_SYS_ADMIN)."""
    problems = []
    for i in at.get("seccomp_load", []):
        if "no_new_privs" in at and i < at["no_new_privs"][0]:
            problems.append(f"/ops/{i}: seccomp_load before no_new_privs (op {at['no_new_privs'][0]}); "
                            "with no_new_privs it loads last")
        if "no_new_privs" not in at and i > min(at.get("drop_bounding", at.get("set_ids", [i]))):
            problems.append(f"/ops/{i}: seccomp_load after the privilege drop, and there is no no_new_privs: "
                            "the kernel refuses it")
    return problems


def _netdev_place(ops: list[dict], at: dict[str, list[int]]) -> list[str]:
    """netdev_move needs child in the container's network namespace: after it is made or joined, before
    fork_init (child exits there)."""
    into = [i for i, o in enumerate(ops) if (o["op"], o["args"].get("type")) == ("setns", "network")
            or o["op"] == "unshare" and "CLONE_NEWNET" in o["args"]["flags"]]
    fork_init = at["fork_init"][0]
    return [f"/ops/{i}: netdev_move must come after child enters the network namespace and before fork_init "
            f"(op {fork_init})" for i in at.get("netdev_move", []) if not into or i < into[0] or i > fork_init]


def _seccomp_filters(ops: list[dict]) -> list[str]:
    problems = []
    for i, o in enumerate(ops):
        if o["op"] == "seccomp_load":
            try:
                problems += [f"/ops/{i}/args/bpf: {p}" for p in check_matches(o["args"]["bpf"], o["args"]["pfc"])]
            except BpfError as e:
                problems.append(f"/ops/{i}/args/bpf: {e}")
    return problems


def _after_the_filter(plan: dict, result: Result) -> None:
    """Rule 8: what init makes after seccomp_load (the op table's declarations, the executor's own), through the
    plan's own BPF: one always made and denied is a problem, one made only on a fallback or failure path a note."""
    from mrunc.compiler.seccomp_check import denials

    for d in denials(plan["ops"], plan["host"].get("arch", "")):
        line = f"/ops/{d.index}: {d.describe(plan['ops'])}"
        if d.always:
            result.problems.append(line)
        else:
            result.notes.append(line)


def _against_config(plan: dict, result: Result, given: bytes | None) -> None:
    """Recompile the config (the one given, or the bundle's if at hand and unchanged) for the plan's host and
    compare op by op."""
    from mrunc.executor.coverage import gaps
    from mrunc.executor.jsontext import loads
    from mrunc.executor.plan import read_bytes, sha256_hex

    bundle = plan.get("bundle")
    config_path = os.path.join(bundle, "config.json") if isinstance(bundle, str) else "the given config"
    raw = given if given is not None else read_bytes(config_path)
    if raw is None:
        result.notes.append("config not at hand: checked the plan's own structure and rules only")
        return
    if sha256_hex(raw) != plan["config_sha256"]:
        where = "the given config is not the one" if given is not None else f"{config_path} changed since"
        result.problems.append(f"/config_sha256: {where} the plan was compiled from; recompile it: "
                               f"mrunc compile CONFIG -o PLAN")
        return
    result.problems += gaps(plan, loads(raw))
    expected = _recompile(plan, raw, config_path)
    if isinstance(expected, str):
        result.problems.append(expected)
        return
    result.notes.append(f"recompiled {config_path} for the plan's host: " +
                        ("same ops" if expected == plan["ops"] else "the ops differ"))
    result.problems += _op_differences(expected, plan["ops"])


def _recompile(plan: dict, raw: bytes, config_path: str) -> list[dict] | str:
    from mrunc.compiler.compile import compile_bytes
    from mrunc.compiler.errors import ConfigError, ConfigErrors

    # The container id the plan was compiled for: hooks are told it; a default cgroup path is named after it.
    hook_ids = [o["args"]["state"].get("id") for o in plan["ops"] if o["op"] == "hook"]
    cgroup = next((o["args"]["dir"] for o in plan["ops"] if o["op"] == "cgroup_mkdir"), "")
    container_id = hook_ids[0] if hook_ids else cgroup.split("/mrunc/", 1)[1] if "/mrunc/" in cgroup else None
    try:
        return compile_bytes(raw, plan["bundle"], container_id, plan["host"])["ops"]
    except (ConfigError, ConfigErrors) as e:
        return f"{config_path}: the config no longer compiles: {e}"


def _op_differences(expected: list[dict], actual: list[dict]) -> list[str]:
    """Each op the config asks for that the plan lacks, each op it adds, each it changes."""
    def line(o: dict) -> str:
        return json.dumps(o, sort_keys=True)

    def name(o: dict) -> str:
        return f"{o['op']} [{o['proc']}] ({o['src']})"

    problems = []
    matcher = difflib.SequenceMatcher(None, [line(o) for o in expected], [line(o) for o in actual], autojunk=False)
    for tag, e1, e2, a1, a2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(e2 - e1, a2 - a1)
        problems += [f"/ops/{a1 + k}: {name(actual[a1 + k])} differs from what the config gives: "
                     f"{name(expected[e1 + k])} with args {json.dumps(expected[e1 + k]['args'])[:160]}"
                     for k in range(paired)]
        problems += [f"/ops: missing {name(expected[j])}: the config asks for it (op {j} when recompiled)"
                     for j in range(e1 + paired, e2)]
        problems += [f"/ops/{i}: extra {name(actual[i])}: the config does not ask for it"
                     for i in range(a1 + paired, a2)]
    return problems


def render(path: str, result: Result) -> str:
    verdict = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
    lines = [f"verify {path}: {verdict}"]
    lines += [f"  problem: {p}" for p in result.problems] + [f"  note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"
