"""`mrunc verify CONFIG|PLAN [--config CONFIG]`: check a plan's structure and invariants without running it. A
config is compiled first (as audit and diff do) and the plan it gives is verified. `--config` names the config a
reviewer approved: the plan must have been compiled from it and do exactly what it asks for (otherwise the bundle's
config.json is used when at hand).

Exit status: 0 the plan holds, 1 it does not (each problem named by its JSON pointer), 2 it cannot be read (nor
compiled)."""

import json
import sys

from mrunc.commands.common import fail

USAGE = "usage: mrunc verify CONFIG|PLAN [--config CONFIG]"


def main(options, args: list[str]) -> int:
    config = None
    if len(args) == 3 and args[1] == "--config":
        try:
            with open(args[2], "rb") as f:
                config = f.read()
        except OSError as e:
            return fail(f"{args[2]}: cannot read: {e.strerror}", 2)
        args = args[:1]
    if len(args) != 1 or args[0].startswith("-"):
        return fail(USAGE, 2)
    try:
        with open(args[0], "rb") as f:
            raw = f.read()
    except OSError as e:
        return fail(f"{args[0]}: cannot read: {e.strerror}", 2)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not (isinstance(data, dict) and "ops" in data):  # not a plan: a config (or neither), compiled first
        from mrunc.review import inputs

        try:
            data = inputs.load(args[0]).plan
        except inputs.InputError as e:
            return fail(str(e), 2)
    from mrunc.review.verify import render, verify

    result = verify(data, config)
    sys.stdout.write(render(args[0], result))
    return 1 if result.problems else 0
