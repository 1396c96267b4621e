"""`mrunc audit CONFIG|PLAN [--profile baseline|restricted|FILE] [--format text|json|markdown|sarif]`.

Exit status: 0 the profile is met, 1 it is violated, 2 bad input (so it can gate CI)."""

import argparse
import sys

from mrunc.commands.common import fail


def main(options, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mrunc audit")  # a usage error exits 2, as bad input should
    parser.add_argument("input", metavar="CONFIG|PLAN")
    parser.add_argument("--profile", default="baseline", help="baseline, restricted, or a JSON/TOML profile file")
    parser.add_argument("--format", choices=("text", "json", "markdown", "sarif"), default="text")
    opts = parser.parse_args(args)
    from mrunc.review import audit, inputs, profiles

    try:
        profile = profiles.load(opts.profile)
        subject = inputs.load(opts.input)
    except (profiles.ProfileError, inputs.InputError) as e:
        return fail(str(e), 2)
    report = audit.audit(subject, profile)
    sys.stdout.write(audit.render(report, opts.format))
    return 0 if report.met else 1
