"""The op table: every op the interpreter knows, which process may run it, and its arguments.

The compiler imports this table to emit ops; the executor refuses a plan naming anything else.
Processes (see executor/run.py for how they hand control to each other):
  runtime  the mrunc process on the host; it outlives the container and cleans up
  child    forked by runtime; joins cgroups and namespaces, then forks init
  init     pid 1 of the container; builds the rootfs, drops privileges, execs the user process
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROCESSES = ("runtime", "child", "init")


@dataclass
class Context:
    """What ops share within one process: pids learnt along the way and the host changes to undo."""

    child_pid: int = 0
    init_pid: int = 0
    undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    sync: Any = None  # child and init: the channel to runtime (run.py)
    pty_master: int = -1  # the terminal's master, in init until sent to runtime (ops_tty.py)
    pty_slave: int = -1
    pty_name: str = ""


OpFunc = Callable[..., None]


@dataclass(frozen=True)
class Op:
    name: str
    procs: tuple[str, ...]
    args: tuple[str, ...]
    run: OpFunc | None  # None: a protocol op the interpreter itself carries out (fork, fork_init)
    doc: str


OPS: dict[str, Op] = {}


def op(name: str, procs: str, *args: str) -> Callable[[OpFunc | None], OpFunc | None]:
    """Register an op. `procs` is a space-separated list of the processes allowed to run it."""

    def register(func: OpFunc | None) -> OpFunc | None:
        doc = (func.__doc__ or "").strip().splitlines()[0] if func and func.__doc__ else ""
        OPS[name] = Op(name, tuple(procs.split()), args, func, doc)
        return func

    return register


def protocol_op(name: str, procs: str, doc: str) -> None:
    OPS[name] = Op(name, tuple(procs.split()), (), None, doc)


Args = dict[str, Any]
