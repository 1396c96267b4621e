"""Process attributes the kernel keeps across execve: execution domain (personality), scheduling policy, I/O
priority. Each op is one syscall on init, made while it is still root (before seccomp and the capability drop)."""

from mrunc.executor import libc
from mrunc.executor.optable import Context, op

# personality(2) domains, sys/personality.h
PERSONALITIES = {"PER_LINUX": 0x0000, "PER_LINUX32": 0x0008}


@op("personality", "init", "domain")
def personality(ctx: Context, domain: str) -> None:
    """personality(2): the execution domain of init, kept by execve (PER_LINUX32: uname -m says i686)."""
    libc.personality(PERSONALITIES[domain])
