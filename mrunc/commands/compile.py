"""`mrunc compile CONFIG [-o PLAN] [--format json|text|sh|py] [--strict]`. With -o PLAN (JSON), prints the plan's
digest as sha256sum does (`sha256:HEX  PLAN`), the value `mrunc exec PLAN --expect` takes.

Its three options are read by hand: argparse, with the shutil and gettext it loads to format help, is ~10 ms of
the compile time, which issue 4 bounds."""

import sys

from mrunc.commands.common import compile_or_error, fail

USAGE = "usage: mrunc compile CONFIG [-o PLAN] [--format json|text|sh|py] [--strict]"
FORMATS = ("json", "text", "sh", "py")


def parse(args: list[str]) -> dict[str, str] | str:
    """{'config', 'output', 'format', 'strict'}, or what is wrong with the arguments."""
    opts = {"output": "", "format": "json", "strict": ""}
    names = {"-o": "output", "--output": "output", "--format": "format"}
    positional = []
    while args:
        arg, args = args[0], args[1:]
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg == "--strict":  # unknown properties refused, not noted
            opts["strict"] = "yes"
        elif name in names:
            if not eq:
                if not args:
                    return f"{name}: expected a value"
                value, args = args[0], args[1:]
            opts[names[name]] = value
        elif arg.startswith("-") and arg != "-":
            return f"unknown option {arg!r}"
        else:
            positional.append(arg)
    if len(positional) != 1:
        return f"expected one CONFIG, got {len(positional)}"
    if opts["format"] not in FORMATS:
        return f"--format: got {opts['format']!r}; allowed: {', '.join(FORMATS)}"
    return opts | {"config": positional[0]}


def main(options, args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    opts = parse(args)
    if isinstance(opts, str):
        print(f"{USAGE}\nmrunc compile: error: {opts}", file=sys.stderr)
        return 2
    plan = compile_or_error(opts["config"], strict=bool(opts["strict"]))
    if isinstance(plan, str):
        return fail(plan)
    from mrunc.compiler.compile import dumps  # imported by compile_or_error, with the garbage collector off

    out = dumps(plan) if opts["format"] == "json" else _render(plan, opts["format"])
    if opts["output"]:
        with open(opts["output"], "w") as f:
            f.write(out)
        if opts["format"] == "json":  # what a reviewer pins: `mrunc exec PLAN --expect sha256:...`
            from mrunc.executor.plan import sha256_hex

            print(f"sha256:{sha256_hex(out.encode())}  {opts['output']}")
    else:
        sys.stdout.write(out)
    return 0


def _render(plan: dict, kind: str) -> str:
    """The listing or a script; not needed for JSON, so not imported for it (executor.run, shlex, jinja2)."""
    from mrunc.compiler import render

    return render.text(plan) if kind == "text" else render.script(plan, kind)
