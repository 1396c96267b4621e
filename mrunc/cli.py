"""Command line. `mrunc exec PLAN` is the hot path: it imports only the executor (no argparse, no compiler)."""

import os
import sys

from mrunc import __version__

USAGE = """usage: mrunc [--root DIR] COMMAND ...

commands:
  compile CONFIG [-o PLAN] [--format json|text|sh|py]   validate and lower a config into a plan
  exec PLAN [--trace]                                   run a plan in the foreground
  run --bundle DIR ID                                   compile DIR/config.json and run it
  --version
"""


def _fail(message: str, status: int = 1) -> int:
    print(f"mrunc: {message}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = "/run/mrunc"
    if args[:1] == ["--root"] and len(args) > 1:
        root, args = args[1], args[2:]
    elif args and args[0].startswith("--root="):
        root, args = args[0].split("=", 1)[1], args[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("--version", "-v", "version"):
        from mrunc.executor.plan import FORMAT

        print(f"mrunc version {__version__}\nspec: 1.3.0\nplan: {FORMAT}")
        return 0
    command, rest = args[0], args[1:]
    if command == "exec":
        return _exec(rest)
    if command == "compile":
        return _compile(rest)
    if command == "run":
        return _run(root, rest)
    return _fail(f"unknown command {command!r}\n{USAGE}", 2)


def _exec(args: list[str]) -> int:
    trace = "--trace" in args
    paths = [a for a in args if a != "--trace"]
    if len(paths) != 1 or paths[0].startswith("-"):
        return _fail("usage: mrunc exec PLAN [--trace]", 2)
    from mrunc.executor import plan as plans

    try:
        return _execute(plans.load(paths[0]), trace)
    except plans.PlanError as e:
        return _fail(f"{paths[0]}: {e}")


def _execute(plan: dict, trace: bool) -> int:
    from mrunc.executor.run import OpFailed, execute

    try:
        return execute(plan, trace)
    except OpFailed as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))


def _compile_or_fail(config_path: str, container_id: str | None = None) -> dict | str:
    """The plan, or the error text naming the field."""
    from mrunc.compiler.compile import compile_config
    from mrunc.compiler.errors import ConfigError, ConfigErrors

    try:
        return compile_config(config_path, container_id)
    except (ConfigError, ConfigErrors) as e:
        return f"{config_path}: invalid config:\n  " + str(e).replace("\n", "\n  ")
    except OSError as e:
        return f"{config_path}: {e.strerror}"


def _compile(args: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="mrunc compile")
    parser.add_argument("config")
    parser.add_argument("-o", "--output")
    parser.add_argument("--format", choices=("json", "text", "sh", "py"), default="json")
    opts = parser.parse_args(args)
    plan = _compile_or_fail(opts.config)
    if isinstance(plan, str):
        return _fail(plan)
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


def _run(root: str, args: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="mrunc run")
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("id")
    opts = parser.parse_args(args)
    plan = _compile_or_fail(os.path.join(opts.bundle, "config.json"), opts.id)
    if isinstance(plan, str):
        return _fail(plan)
    state = os.path.join(root, opts.id)
    try:
        os.makedirs(root, exist_ok=True)
        os.mkdir(state, 0o711)
    except FileExistsError:
        return _fail(f"container {opts.id!r} already exists (state dir {state})")
    try:
        from mrunc.compiler.compile import dumps

        with open(os.path.join(state, "plan.json"), "w") as f:
            f.write(dumps(plan))
        return _execute(plan, opts.trace)
    finally:
        for name in os.listdir(state):
            os.unlink(os.path.join(state, name))
        os.rmdir(state)
