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
