"""`mrunc compile CONFIG [-o PLAN] [--format json|text|sh|py]`."""

import argparse
import sys

from mrunc.commands.common import compile_or_error, fail


def main(options, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mrunc compile")
    parser.add_argument("config")
    parser.add_argument("-o", "--output")
    parser.add_argument("--format", choices=("json", "text", "sh", "py"), default="json")
    opts = parser.parse_args(args)
    plan = compile_or_error(opts.config)
    if isinstance(plan, str):
        return fail(plan)
    from mrunc.compiler import render
    from mrunc.compiler.compile import dumps

    out = {"json": dumps, "text": render.text, "sh": lambda p: render.script(p, "sh"),
           "py": lambda p: render.script(p, "py")}[opts.format](plan)
    if opts.output:
        with open(opts.output, "w") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    return 0
