"""`mrunc diff A B [--format text|json|markdown] [--fail-on raise]`: A and B are plans or configs.

Exit status as diff(1): 0 same, 1 different, 2 trouble. With `--fail-on raise`, 1 only when a change raises
the container's privilege."""

import argparse
import sys

from mrunc.commands.common import fail


def main(options, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mrunc diff")  # a usage error exits 2, as trouble should
    parser.add_argument("a", metavar="A")
    parser.add_argument("b", metavar="B")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    parser.add_argument("--fail-on", choices=("raise",))
    opts = parser.parse_args(args)
    from mrunc.review import diff, inputs

    try:
        a, b = inputs.load(opts.a), inputs.load(opts.b)
    except inputs.InputError as e:
        return fail(str(e), 2)
    changes = diff.diff(a.plan, b.plan)
    sys.stdout.write(diff.render(changes, opts.format, (opts.a, opts.b)))
    if opts.fail_on == "raise":
        return 1 if any(c.label == diff.RAISING for c in changes) else 0
    return 1 if changes else 0
