"""Load a plan and check it before anything runs: version, fields, known ops, who runs what, and that it is
fresh: compiled for this host, from the config.json its bundle holds now."""

import os
import sys

try:  # not hashlib: it loads OpenSSL's libcrypto, ms of start-up, to hash a few KiB
    from _sha256 import sha256 as _sha256
except ImportError:  # Python 3.12+
    from _sha2 import sha256 as _sha256

from mrunc import __version__
from mrunc.executor.argtypes import CHOICES, problem, type_of
from mrunc.executor.host import fingerprint
from mrunc.executor.jsontext import loads
from mrunc.executor.optable import PROCESSES, find

FORMAT = "mrunc-plan/1"
PLAN_FIELDS = ("format", "mrunc_version", "config_sha256", "host", "ops")
# The plan's other fields and their types (argtypes' notation); ops and hook lists are checked op by op.
FIELD_TYPES = {"mrunc_version": "str", "config_sha256": "str", "host": "object", "bundle": "str", "notes": "[str]"}
OP_FIELDS = ("op", "proc", "args", "src")


PROCESS_STEPS = CHOICES["process_step"]
NO_PROCESS = "the config has no process, so there is nothing to start (config.md: process is REQUIRED for start)"
NO_EXECVE = "/ops: no execve, so there is nothing to start (as compiled from a config without /process)"


class PlanError(Exception):
    """A plan the executor refuses to run; the message says which field and why."""


def load(path: str, force: bool = False, expect: str | None = None) -> dict:
    """A checked plan. `force` runs a stale plan anyway, saying loudly on stderr why it is stale. `expect`
    ("sha256:HEX") refuses any plan file but the one with that digest, whatever `force` says."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if expect and (digest := "sha256:" + sha256_hex(raw)) != expect:
            raise PlanError(f"the plan is {digest}, not the expected {expect}: refusing to run a plan other than the "
                            "one pinned")
        plan = loads(raw)
    except OSError as e:
        raise PlanError(f"{path}: cannot read plan: {e.strerror}") from None
    except (ValueError, RecursionError) as e:
        raise PlanError(f"{path}: not a JSON plan: {e}") from None
    check(plan, force=force, plan_path=path)
    return plan


def check(plan: object, host: dict[str, str] | None = None, force: bool = False, plan_path: str = "PLAN") -> None:
    check_structure(plan)
    assert isinstance(plan, dict)
    for reason in staleness(plan, host or fingerprint(), plan_path):
        if not force:
            raise PlanError(reason + "; or pass --force to run it anyway")
        print(f"mrunc: WARNING: --force: running a stale plan: {reason}", file=sys.stderr)


def check_structure(plan: object) -> None:
    """The plan alone: its format and fields, known ops with their fields, each run by the right process, in order."""
    if not isinstance(plan, dict):
        raise PlanError("plan: expected a JSON object")
    if plan.get("format") != FORMAT:
        raise PlanError(f"/format: unknown plan format {plan.get('format')!r}; this mrunc runs {FORMAT!r}")
    for name in PLAN_FIELDS:
        if name not in plan:
            raise PlanError(f"/{name}: missing")
    for name, kind in FIELD_TYPES.items():
        if name in plan and (found := problem(kind, plan[name])):
            raise PlanError(f"/{name}: {found}")
    ops = plan["ops"]
    if not isinstance(ops, list) or not ops:
        raise PlanError("/ops: expected a non-empty list of ops")
    for i, o in enumerate(ops):
        _check_op(i, o)
    _check_sequence(ops)
    for key in ("poststart", "poststop"):  # run by `start` and `delete` (or a foreground run), on the host
        for i, o in enumerate(plan.get(key, [])):
            _check_op(i, o, f"/{key}")
            if o["proc"] != "runtime":
                raise PlanError(f"/{key}/{i}/proc: only runtime runs these ops, not {o['proc']!r}")
            _check_hook_steps(plan[key], i, f"/{key}")


def _check_op(i: int, o: object, list_pointer: str = "/ops") -> None:
    where = f"{list_pointer}/{i}"
    if not isinstance(o, dict):
        raise PlanError(f"{where}: expected an object")
    for name in OP_FIELDS:
        if name not in o:
            raise PlanError(f"{where}/{name}: missing")
    spec = find(o["op"]) if isinstance(o["op"], str) else None  # imports its op module if need be
    if spec is None:
        raise PlanError(f"{where}/op: unknown op {o['op']!r}")
    if o["proc"] not in spec.procs:
        raise PlanError(f"{where}/proc: {o['op']} runs in {'/'.join(spec.procs)}, not {o['proc']!r}")
    if not isinstance(o["args"], dict) or set(o["args"]) != set(spec.args):
        got = sorted(o["args"]) if isinstance(o["args"], dict) else o["args"]
        raise PlanError(f"{where}/args: {o['op']} takes {sorted(spec.args)}, got {got}")
    for name, value in o["args"].items():
        kind = type_of(o["op"], name)
        if kind is None:  # a bug of mrunc's: tests/test_plan_schema.py keeps argtypes complete
            raise PlanError(f"{where}/args/{name}: mrunc has no type for {o['op']}'s {name} (executor/argtypes.py)")
        if found := problem(kind, value):
            raise PlanError(f"{where}/args/{name}: {found}")
    if not isinstance(o["src"], str) or not o["src"].startswith("/"):
        raise PlanError(f"{where}/src: expected the JSON pointer of a config field, got {o['src']!r:.60}")


def _check_sequence(ops: list[dict]) -> None:
    """runtime until fork; then child until fork_init, then init; runtime ops may interleave; execve last."""
    phase, waits = "runtime", False
    for i, o in enumerate(ops):
        proc = o["proc"]
        if proc not in PROCESSES:
            raise PlanError(f"/ops/{i}/proc: unknown process {proc!r}")
        if proc != "runtime" and proc != phase:
            raise PlanError(f"/ops/{i}/proc: {proc} op while the container side is {phase}")
        if proc == "runtime" and waits:
            raise PlanError(f"/ops/{i}/proc: a runtime op after wait_start (create's runtime has exited by then)")
        if o["op"] == "fork":
            phase = "child"
        elif o["op"] == "fork_init":
            phase = "init"
        waits = waits or o["op"] == "wait_start"
    if not any(o["op"] == "execve" for o in ops):  # compiled from a config without a process
        raise PlanError(NO_EXECVE)
    if ops[-1]["op"] != "execve" or phase != "init":
        raise PlanError("/ops: a plan must fork, fork_init, and end with execve")
    names = [o["op"] for o in ops]
    for i in range(len(ops)):
        _check_hook_steps(ops, i)
    _check_join_alongside(ops, names)
    _check_self_join(names)


def process_step_ops(ops: list[dict], i: int) -> list[dict]:
    """The ops giving init the user process's credentials and filter (PROCESS_STEPS) that come after op `i`, in plan
    order: what a startContainer hook there runs before its execve (ops_hooks.hook; order.py says why)."""
    return [o for o in ops[i + 1:] if o["proc"] == "init" and o["op"] in PROCESS_STEPS]


def process_steps_after(ops: list[dict], i: int) -> list[str]:
    """The names of process_step_ops: a startContainer hook's `as_process`."""
    return [o["op"] for o in process_step_ops(ops, i)]


def _check_hook_steps(ops: list[dict], i: int, list_pointer: str = "/ops") -> None:
    """A startContainer hook's as_process names exactly the process steps after it, in order (the hook's child runs
    those very ops); every other hook's is empty."""
    o = ops[i]
    if o["op"] != "hook":
        return
    start_container = o["args"]["kind"] == "startContainer" and o["proc"] == "init" and list_pointer == "/ops"
    expected = process_steps_after(ops, i) if start_container else []
    if o["args"]["as_process"] != expected:
        whose = ("the user process's steps after it" if start_container else
                 "none: only a startContainer hook runs as the process")
        raise PlanError(f"{list_pointer}/{i}/args/as_process: {o['args']['as_process']}; expected {expected} "
                        f"({whose})")


def _check_join_alongside(ops: list[dict], names: list[str]) -> None:
    """v2: runtime ops right after fork_init run alongside init, which waits for them at cgroup_joined; no other
    runtime op may come between init's first op and that wait."""
    after_fork_init = names.index("fork_init") + 1
    first_init = next((i for i in range(after_fork_init, len(ops)) if ops[i]["proc"] != "runtime"), len(ops))
    joined = names.index("cgroup_joined") if "cgroup_joined" in names else None
    if first_init == after_fork_init:
        if joined is not None:
            raise PlanError(f"/ops/{joined}/op: cgroup_joined waits for runtime ops right after fork_init; "
                            "there are none")
        return
    if joined is None:
        raise PlanError("/ops: the runtime ops after fork_init are never waited for (cgroup_joined)")
    for i in range(first_init, joined):
        if ops[i]["proc"] == "runtime":
            raise PlanError(f"/ops/{i}/proc: a runtime op before cgroup_joined (runtime still runs the ops after "
                            "fork_init)")


def _check_self_join(names: list[str]) -> None:
    """v1: child opens the tasks files (cgroup_open_tasks) that init writes itself into (cgroup_join_self)."""
    opened = names.index("cgroup_open_tasks") if "cgroup_open_tasks" in names else None
    if "cgroup_join_self" in names:
        joined = names.index("cgroup_join_self")
        if opened is None or opened > joined:
            raise PlanError(f"/ops/{joined}/op: cgroup_join_self writes the tasks files cgroup_open_tasks opens; "
                            "there is none before it")
    elif opened is not None:
        raise PlanError("/ops: cgroup_open_tasks opens the tasks files for init's cgroup_join_self, which is missing: "
                        "init would stay outside its cgroups")


def staleness(plan: dict, host: dict, plan_path: str = "PLAN") -> list[str]:
    """Why this plan may no longer describe what would run here: another mrunc or host, a bundle config changed
    since, or no bundle config at hand to tell."""
    bundle = plan.get("bundle")
    config = os.path.join(bundle, "config.json") if isinstance(bundle, str) else None
    command = f"mrunc compile {config or 'CONFIG'} -o {plan_path}"
    problems = []
    if plan["mrunc_version"] != __version__:
        problems.append(f"/mrunc_version: the plan was compiled by mrunc {plan['mrunc_version']}, this is mrunc "
                        f"{__version__}; recompile it: {command}")
    if plan["host"] != host:
        was = plan["host"] if isinstance(plan["host"], dict) else {}
        differ = ", ".join(f"{k} {was.get(k)!r} (plan) vs {v!r} (here)"
                           for k, v in sorted(host.items()) if was.get(k) != v)
        problems.append(f"/host: the plan was compiled for another host: {differ or plan['host']}; "
                        f"recompile it here: {command}")
    raw = read_bytes(config) if config else None
    if config is None:
        problems.append("/bundle: missing: the plan names no bundle, so nothing shows it still matches its config")
    elif raw is None:
        problems.append(f"/bundle: {config} cannot be read, so nothing shows the plan still matches it")
    elif (digest := sha256_hex(raw)) != plan["config_sha256"]:
        problems.append(f"/config_sha256: {config} changed since the plan was compiled (plan: sha256:"
                        f"{str(plan['config_sha256'])[:16]}, file now: sha256:{digest[:16]}); recompile it: {command}")
    else:
        from mrunc.executor.coverage import gaps

        problems += [f"{gap} ({config}): the plan was edited since it was compiled; recompile it: {command}"
                     for gap in gaps(plan, _config(raw))]
    return problems


def read_bytes(path: str) -> bytes | None:
    """The file's bytes (a bundle's config.json); None when it is not at hand."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _config(raw: bytes) -> object:
    try:
        return loads(raw)
    except (ValueError, RecursionError):
        return None


def sha256_hex(data: bytes) -> str:
    return _sha256(data).hexdigest()
