"""Load a plan and check it before anything runs: version, fields, known ops, who runs what, host facts."""

import json

from mrunc.executor.host import fingerprint
from mrunc.executor.ops import OPS, PROCESSES

FORMAT = "mrunc-plan/1"
PLAN_FIELDS = ("format", "mrunc_version", "config_sha256", "host", "ops")
OP_FIELDS = ("op", "proc", "args", "src")


class PlanError(Exception):
    """A plan the executor refuses to run; the message says which field and why."""


def load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            plan = json.loads(f.read())
    except OSError as e:
        raise PlanError(f"{path}: cannot read plan: {e.strerror}") from None
    except ValueError as e:
        raise PlanError(f"{path}: not a JSON plan: {e}") from None
    check(plan)
    return plan


def check(plan: object, host: dict[str, str] | None = None) -> None:
    if not isinstance(plan, dict):
        raise PlanError("plan: expected a JSON object")
    if plan.get("format") != FORMAT:
        raise PlanError(f"/format: unknown plan format {plan.get('format')!r}; this mrunc runs {FORMAT!r}")
    for name in PLAN_FIELDS:
        if name not in plan:
            raise PlanError(f"/{name}: missing")
    host = host or fingerprint()
    if plan["host"] != host:
        raise PlanError(
            f"/host: plan was compiled for {plan['host']}, this host is {host}; recompile it here")
    ops = plan["ops"]
    if not isinstance(ops, list) or not ops:
        raise PlanError("/ops: expected a non-empty list of ops")
    for i, o in enumerate(ops):
        _check_op(i, o)
    _check_sequence(ops)


def _check_op(i: int, o: object) -> None:
    where = f"/ops/{i}"
    if not isinstance(o, dict):
        raise PlanError(f"{where}: expected an object")
    for name in OP_FIELDS:
        if name not in o:
            raise PlanError(f"{where}/{name}: missing")
    spec = OPS.get(o["op"])
    if spec is None:
        raise PlanError(f"{where}/op: unknown op {o['op']!r}")
    if o["proc"] not in spec.procs:
        raise PlanError(f"{where}/proc: {o['op']} runs in {'/'.join(spec.procs)}, not {o['proc']!r}")
    if not isinstance(o["args"], dict) or set(o["args"]) != set(spec.args):
        got = sorted(o["args"]) if isinstance(o["args"], dict) else o["args"]
        raise PlanError(f"{where}/args: {o['op']} takes {sorted(spec.args)}, got {got}")


def _check_sequence(ops: list[dict]) -> None:
    """runtime until fork; then child until fork_init, then init; runtime ops may interleave; execve last."""
    phase = "runtime"
    for i, o in enumerate(ops):
        proc = o["proc"]
        if proc not in PROCESSES:
            raise PlanError(f"/ops/{i}/proc: unknown process {proc!r}")
        if proc != "runtime" and proc != phase:
            raise PlanError(f"/ops/{i}/proc: {proc} op while the container side is {phase}")
        if o["op"] == "fork":
            phase = "child"
        elif o["op"] == "fork_init":
            phase = "init"
    if ops[-1]["op"] != "execve" or phase != "init":
        raise PlanError("/ops: a plan must fork, fork_init, and end with execve")
