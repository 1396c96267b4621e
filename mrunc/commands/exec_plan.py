"""`mrunc exec PLAN [--trace]`: the hot path; no argparse, no compiler."""

from mrunc.commands.common import execute, fail


def main(options, args: list[str]) -> int:
    trace = "--trace" in args
    paths = [a for a in args if a != "--trace"]
    if len(paths) != 1 or paths[0].startswith("-"):
        return fail("usage: mrunc exec PLAN [--trace]", 2)
    from mrunc.executor import plan as plans

    try:
        plan = plans.load(paths[0])
    except plans.PlanError as e:
        return fail(f"{paths[0]}: {e}")
    return execute(plan, trace)
