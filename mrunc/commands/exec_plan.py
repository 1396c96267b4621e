"""`mrunc exec PLAN [--trace] [--force] [--expect sha256:HEX]`: the hot path; no argparse, no compiler.

`--expect` pins the plan a reviewer approved: any other plan file is refused, --force or not.

`mrunc exec` with any other option or argument, or whose one argument is not a file, a path or *.json, is
runc's exec into a running container (commands/exec_container.py)."""

import os

from mrunc.commands.common import execute, fail

USAGE = "usage: mrunc exec PLAN [--trace] [--force] [--expect sha256:HEX]"
PLAN_FLAGS = ("--trace", "--force")


def main(options, args: list[str]) -> int:
    expect, args = _expect(args)
    if expect is None and _into_container(args):
        from mrunc.commands.exec_container import main as exec_container

        return exec_container(options, args)
    flags = {a for a in args if a in PLAN_FLAGS}
    paths = [a for a in args if a not in flags]
    if len(paths) != 1 or paths[0].startswith("-") or expect == "":
        return fail(USAGE, 2)
    if expect and not _is_digest(expect):
        return fail(f"--expect: got {expect!r}; allowed: sha256: and 64 hex digits (as `mrunc compile -o` prints)", 2)
    from mrunc.executor import plan as plans

    try:
        plan = plans.load(paths[0], force="--force" in flags, expect=expect)
    except plans.PlanError as e:
        return fail(f"{paths[0]}: {e}")
    return execute(plan, "--trace" in flags)


def _expect(args: list[str]) -> tuple[str | None, list[str]]:
    """The value of --expect (None without it, "" when it has none) and the other arguments."""
    for i, arg in enumerate(args):
        if arg == "--expect":
            return (args[i + 1] if i + 1 < len(args) else ""), args[:i] + args[i + 2:]
        if arg.startswith("--expect="):
            return arg.partition("=")[2], args[:i] + args[i + 1:]
    return None, args


def _is_digest(value: str) -> bool:
    hex_part = value.removeprefix("sha256:")
    return value.startswith("sha256:") and len(hex_part) == 64 and all(c in "0123456789abcdef" for c in hex_part)


def _into_container(args: list[str]) -> bool:
    positional = [a for a in args if not a.startswith("-")]
    others = [a for a in args if a.startswith("-") and a not in PLAN_FLAGS]
    if others or len(positional) != 1:
        return True
    path = positional[0]  # a plan file, or a container id (ids have no "/")
    return not (os.path.exists(path) or "/" in path or path.endswith(".json"))
