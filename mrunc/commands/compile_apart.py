"""create and run compile in a forked child, which hands the plan back as the JSON text `mrunc compile` writes.

The process that compiled would stay big to the end: the compiler's modules and what they allocated (~3 MiB)
stay in it, and it is the runtime process, which forks the container's child and init (each starts as a copy of
it: its resident pages are theirs too, and the fork copies their page tables). Compiled apart, the runtime holds
only the executor, as `mrunc exec PLAN` does, and the compiler's memory goes with the child. The executor's
modules are imported before the fork, so the child does not import them again.
"""

import os
import sys

from mrunc.executor import jsontext

PLAN, ERROR = b"P", b"E"  # the first byte of the child's answer


def compile_apart(config_path: str, container_id: str, console_socket: str | None, **extra: object
                  ) -> tuple[dict, str] | str:
    """(the plan, its JSON text), or the error text naming the field. `extra`: compile_config's keywords."""
    from mrunc.executor import optable, run  # noqa: F401 (imported for both processes, see above)

    optable.load(optable.COMMON_MODULES)
    sys.stdout.flush()  # nothing of ours for the child to write a second time
    sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(write, config_path, container_id, console_socket, extra)
    os.close(write)
    with open(read, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or data[:1] not in (PLAN, ERROR):
        return f"{config_path}: the compiler failed (exit status {os.waitstatus_to_exitcode(status)}; see above)"
    text = data[1:].decode()
    return (jsontext.loads(text), text) if data[:1] == PLAN else text


def _child(write: int, config_path: str, container_id: str, console_socket: str | None, extra: dict) -> None:
    status = 1
    try:
        from mrunc.commands.common import compile_or_error

        plan = compile_or_error(config_path, container_id, console_socket, **extra)
        if isinstance(plan, str):
            data = ERROR + plan.encode()
        else:
            from mrunc.compiler.compile import dumps

            data = PLAN + dumps(plan).encode()
        while data:
            data = data[os.write(write, data):]
        status = 0
    except BaseException:  # a bug: its traceback, as it would be shown without the child
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # nothing of the parent's (buffers, finally blocks up the stack) runs twice
