"""`mrunc compile CONFIG [-o|--output PLAN] [--format json|text|sh|py] [--strict]`. With -o PLAN (JSON), prints
the plan's digest as sha256sum does (`sha256:HEX  PLAN`), the value `mrunc exec PLAN --expect` takes.

Its options are read by hand: argparse, with the shutil and gettext it loads to format help, is ~10 ms of
the compile time, which issue 4 bounds."""

import sys

from mrunc.commands.common import compile_or_error, fail

FORMATS = ("json", "text", "sh", "py")  # the first is the default
# Every option compile takes: spellings, name, its value (None: a flag; a tuple: one of those words), help. The
# parser, the usage and --help are all made from it, so none of them can leave an option out.
OPTIONS: tuple[tuple[tuple[str, ...], str, "str | tuple[str, ...] | None", str], ...] = (
    (("-o", "--output"), "output", "PLAN", "write the plan to PLAN (JSON: and print the sha256 digest exec pins)"),
    (("--format",), "format", FORMATS, "json (default), text (a listing), sh or py (a script of the ops)"),
    (("--strict",), "strict", None, "refuse properties mrunc does not know, instead of noting them"),
)


def _usage() -> str:
    parts = []
    for spellings, _, value, _ in OPTIONS:
        metavar = "|".join(value) if isinstance(value, tuple) else value
        parts.append(f"[{'|'.join(spellings)}{' ' + metavar if metavar else ''}]")
    return "usage: mrunc compile CONFIG " + " ".join(parts)


USAGE = _usage()


def help_text() -> str:
    lines = [USAGE, "", "options:"]
    lines += [f"  {', '.join(spellings):<16}{about}" for spellings, _, _, about in OPTIONS]
    return "\n".join(lines)


def parse(args: list[str]) -> dict[str, str] | str:
    """{'config', 'output', 'format', 'strict'}, or what is wrong with the arguments."""
    opts = {"output": "", "format": FORMATS[0], "strict": ""}
    flags = {s: name for spellings, name, value, _ in OPTIONS if value is None for s in spellings}
    valued = {s: name for spellings, name, value, _ in OPTIONS if value is not None for s in spellings}
    positional = []
    while args:
        arg, args = args[0], args[1:]
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in flags and not eq:
            opts[flags[name]] = "yes"
        elif name in valued:
            if not eq:
                if not args:
                    return f"{name}: expected a value"
                value, args = args[0], args[1:]
            opts[valued[name]] = value
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
        print(help_text())
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
