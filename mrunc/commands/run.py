"""`mrunc [--root DIR] run --bundle DIR ID`: compile DIR/config.json and run it in the foreground."""

import argparse
import os

from mrunc.commands.common import compile_or_error, execute, fail


def main(options, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mrunc run")
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--console-socket")
    parser.add_argument("id")
    opts = parser.parse_args(args)
    plan = compile_or_error(os.path.join(opts.bundle, "config.json"), opts.id, opts.console_socket)
    if isinstance(plan, str):
        return fail(plan)
    state = os.path.join(options.root, opts.id)
    try:
        os.makedirs(options.root, exist_ok=True)
        os.mkdir(state, 0o711)
    except FileExistsError:
        return fail(f"container {opts.id!r} already exists (state dir {state})")
    try:
        from mrunc.compiler.compile import dumps

        with open(os.path.join(state, "plan.json"), "w") as f:
            f.write(dumps(plan))
        return execute(plan, opts.trace)
    finally:
        for name in os.listdir(state):
            os.unlink(os.path.join(state, name))
        os.rmdir(state)
