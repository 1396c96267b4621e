"""`mrunc exec PLAN [--trace] [--force]`: the hot path; no argparse, no compiler.

`mrunc exec` with any other option or argument, or whose one argument is not a file, a path or *.json, is
runc's exec into a running container (commands/exec_container.py)."""

import os

from mrunc.commands.common import execute, fail

USAGE = "usage: mrunc exec PLAN [--trace] [--force]"
PLAN_FLAGS = ("--trace", "--force")


def main(options, args: list[str]) -> int:
    if _into_container(args):
        from mrunc.commands.exec_container import main as exec_container

        return exec_container(options, args)
    flags = {a for a in args if a in PLAN_FLAGS}
    paths = [a for a in args if a not in flags]
    if len(paths) != 1 or paths[0].startswith("-"):
        return fail(USAGE, 2)
    from mrunc.executor import plan as plans

    try:
        plan = plans.load(paths[0], force="--force" in flags)
    except plans.PlanError as e:
        return fail(f"{paths[0]}: {e}")
    return execute(plan, "--trace" in flags)


def _into_container(args: list[str]) -> bool:
    positional = [a for a in args if not a.startswith("-")]
    others = [a for a in args if a.startswith("-") and a not in PLAN_FLAGS]
    if others or len(positional) != 1:
        return True
    path = positional[0]  # a plan file, or a container id (ids have no "/")
    return not (os.path.exists(path) or "/" in path or path.endswith(".json"))
