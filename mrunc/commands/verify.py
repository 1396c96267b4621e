"""`mrunc verify PLAN`: check a plan's structure and invariants without running it.

Exit status: 0 the plan holds, 1 it does not (each problem named by its JSON pointer), 2 it cannot be read."""

import json
import sys

from mrunc.commands.common import fail


def main(options, args: list[str]) -> int:
    if len(args) != 1 or args[0].startswith("-"):
        return fail("usage: mrunc verify PLAN", 2)
    try:
        with open(args[0], "rb") as f:
            plan = json.loads(f.read())
    except OSError as e:
        return fail(f"{args[0]}: cannot read plan: {e.strerror}", 2)
    except ValueError as e:
        return fail(f"{args[0]}: not a JSON plan: {e}", 2)
    from mrunc.review.verify import render, verify

    result = verify(plan)
    sys.stdout.write(render(args[0], result))
    return 1 if result.problems else 0
