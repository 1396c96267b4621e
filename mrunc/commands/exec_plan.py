"""`mrunc exec PLAN [--trace] [--force]`: the hot path; no argparse, no compiler."""

from mrunc.commands.common import execute, fail

USAGE = "usage: mrunc exec PLAN [--trace] [--force]"


def main(options, args: list[str]) -> int:
    flags = {a for a in args if a in ("--trace", "--force")}
    paths = [a for a in args if a not in flags]
    if len(paths) != 1 or paths[0].startswith("-"):
        return fail(USAGE, 2)
    from mrunc.executor import plan as plans

    try:
        plan = plans.load(paths[0], force="--force" in flags)
    except plans.PlanError as e:
        return fail(f"{paths[0]}: {e}")
    return execute(plan, "--trace" in flags)
