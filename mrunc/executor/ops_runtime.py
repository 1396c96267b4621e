"""Ops runtime runs for the engine that called it."""

import os

from mrunc.executor.optable import Context, op


@op("write_pid_file", "runtime", "path")
def write_pid_file(ctx: Context, path: str) -> None:
    """Write init's host pid, in decimal without a newline, to a temp file renamed over `path`, as runc does."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(ctx.init_pid))
    os.rename(tmp, path)


@op("wait_runtime_exit", "init")
def wait_runtime_exit(ctx: Context) -> None:
    """Block until runtime has gone (EOF on the sync socket). A detached exec: the engine reads the pid file
    once mrunc returns and must find the process alive (containerd 1.6's shim loses an exit seen first)."""
    while os.read(ctx.sync.fd, 64):
        pass
