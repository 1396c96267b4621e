"""`mrunc exec [--process FILE | -- ARGS...] [--detach] [--tty] [--pid-file F] [--console-socket S] [--cwd D]
[--env K=V] [--user UID[:GID]] [--preserve-fds N] ID`: run a new process in a running container, compiled
into a plan of its own (shown with --plan). Foreground: waits and returns its status; --detach: returns
once it runs, after writing the pid file.

Its options are read by mrunc/commands/args.py, not argparse (engines exec into containers often: health checks,
probes). As runc's, they come before ID: what follows ID is the command, its options included."""

import json
import os

from mrunc.commands.args import Options, parse_or_status
from mrunc.commands.common import execute, fail, preserved_fds

USAGE = ("usage: mrunc exec [--process FILE] [--detach] [--tty] [--pid-file F] [--console-socket S] [--cwd D] "
         "[--env K=V]... [--user UID[:GID]] [--preserve-fds N] [--trace] [--plan] ID [--] [ARGS...]")
# --trace prints each op to stderr as it runs; --plan prints the exec plan as text instead of running it
FLAGS = {"--detach": "detach", "-d": "detach", "--tty": "tty", "-t": "tty", "--trace": "trace", "--plan": "plan"}
VALUED = {"--process": ("process", None), "-p": ("process", None), "--pid-file": ("pid_file", None),
          "--console-socket": ("console_socket", None), "--cwd": ("cwd", None), "--env": ("env", None),
          "-e": ("env", None), "--user": ("user", None), "-u": ("user", None),
          "--preserve-fds": ("preserve_fds", preserved_fds)}


def main(options, args: list[str]) -> int:
    opts = parse_or_status(USAGE, args, FLAGS, VALUED, ("id",), defaults={"preserve_fds": 0}, repeated=("env",),
                           tail="args")
    if isinstance(opts, int):
        return opts
    if refusal := _bad_env(opts.env):  # before the container is looked at, as argument errors are
        return fail(refusal)
    plan = _compile(options.root, opts)
    if isinstance(plan, str):
        return fail(plan)
    if opts.plan:
        from mrunc.compiler.render import text

        print(text(plan), end="")
        return 0
    from mrunc.commands.lifecycle import host_policy

    if refusal := host_policy(options.policy, plan, None, None, opts.id, "exec"):
        return fail(refusal)
    return execute(plan, opts.trace, detach=opts.detach)


def _bad_env(env: list[str]) -> str | None:
    from mrunc.compiler.compile_exec import ENV_ALLOWED, env_problem

    for entry in env:
        if problem := env_problem(entry):
            return f"exec: --env {entry!r}: {problem}; allowed: {ENV_ALLOWED}"
    return None


def _compile(root: str, opts: Options) -> dict | str:
    """The exec plan, or the error text."""
    from mrunc.compiler.compile_exec import check_process, compile_exec, exec_target, process_from_args
    from mrunc.compiler.errors import ConfigError
    from mrunc.executor.plan import PlanError, check_structure
    from mrunc.state import Container, StateError

    try:
        container = Container(root, opts.id)
        state = container.load()
        status = container.status(state)
        if status not in ("running", "created"):
            return f"cannot exec in container {opts.id!r}: it is {status}"
        container_plan = container.plan()
        check_structure(container_plan)  # the executor's check: exec compiles against the plan's ops
        exec_target(state, container_plan)  # what compile_exec reads of it: a damaged plan is said so here
    except StateError as e:
        return str(e)
    except PlanError as e:
        return f"container {opts.id!r}: {container.path('plan.json')}: {e}"
    except (KeyError, TypeError, AttributeError, StopIteration) as e:
        return f"container {opts.id!r}: {container.path('plan.json')}: not as mrunc wrote it ({type(e).__name__}: {e})"
    source = opts.process or "exec"
    try:
        if opts.process:
            process = _read_process(opts.process)
        elif not opts.args:
            return "exec: give --process FILE or the command to run (mrunc exec ID -- ARGS...)"
        else:
            with open(os.path.join(state["bundle"], "config.json")) as f:
                base = json.load(f)["process"]
            process = process_from_args(base, opts.args, opts.tty, opts.cwd, opts.env, opts.user)
        check_process(process)  # before the flags below read it
        if process.get("terminal") and not opts.console_socket and opts.detach:
            return "exec: a terminal for a detached process needs --console-socket to send it to"
        if opts.console_socket and not process.get("terminal"):
            return "exec: --console-socket given, but the process has no terminal (--tty, process.terminal)"
        return compile_exec(process, state, container_plan, opts.console_socket,
                            opts.pid_file and os.path.abspath(opts.pid_file), opts.preserve_fds, opts.detach)
    except ConfigError as e:
        return f"{source}: invalid process:\n  {e}"
    except OSError as e:
        return f"{e.filename or source}: {e.strerror}"
    except ValueError as e:
        return f"{source}: not JSON: {e}"


def _read_process(path: str) -> object:
    from mrunc.compiler.parse import parse

    with open(path, "rb") as f:
        return parse(f.read(), "a process")
