"""Command line: global options, then one module per command (mrunc/commands/), imported only when used.

`mrunc exec PLAN` is the hot path: it must reach the executor without importing argparse or the compiler.
"""

import sys

from mrunc import SPEC_VERSION, __version__

# command -> module in mrunc.commands with `main(options: GlobalOptions, args: list[str]) -> int`
COMMANDS = {
    "audit": "audit",
    "compile": "compile",
    "diff": "diff",
    "exec": "exec_plan",
    "features": "features",
    "run": "run",
    "spec": "spec",
    "verify": "verify",
}

USAGE = """usage: mrunc [--root DIR] COMMAND ...

commands:
  compile CONFIG [-o PLAN] [--format json|text|sh|py]   validate and lower a config into a plan
  exec PLAN [--trace] [--force]                         run a plan in the foreground (--force: even if stale)
  run --bundle DIR ID                                   compile DIR/config.json and run it
  features                                              what this runtime supports (runtime-spec features.md)
  spec [--rootless] [--bundle DIR]                      write a default config.json, like `runc spec`
  audit CONFIG|PLAN [--profile P] [--format F]          check a plan against baseline/restricted/a profile file
  diff A B [--format F] [--fail-on raise]               what changes between two plans, by security impact
  verify PLAN                                           check a plan's structure and invariants without running it
  --version
"""


class GlobalOptions:
    """Defaults as class attributes; not a dataclass, which would put inspect and re on exec's start-up."""

    root: str = "/run/mrunc"


def _fail(message: str, status: int = 1) -> int:
    print(f"mrunc: {message}", file=sys.stderr)
    return status


def parse_global(args: list[str]) -> tuple[GlobalOptions, list[str]]:
    """Global options come before the command, as in runc: `--root DIR` or `--root=DIR`."""
    options = GlobalOptions()
    while args and args[0].startswith("--root"):
        if args[0] == "--root" and len(args) > 1:
            options.root, args = args[1], args[2:]
        elif args[0].startswith("--root="):
            options.root, args = args[0].split("=", 1)[1], args[1:]
        else:
            break
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_global(list(sys.argv[1:] if argv is None else argv))
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("--version", "-v", "version"):
        from mrunc.executor.plan import FORMAT

        print(f"mrunc version {__version__}\nspec: {SPEC_VERSION}\nplan: {FORMAT}")
        return 0
    module = COMMANDS.get(args[0])
    if module is None:
        return _fail(f"unknown command {args[0]!r}\n{USAGE}", 2)
    return __import__(f"mrunc.commands.{module}", fromlist=["main"]).main(options, args[1:])
