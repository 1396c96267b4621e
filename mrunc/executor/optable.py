"""The op table: every op the interpreter knows, which process may run it, and its arguments.

The compiler imports this table to emit ops; the executor refuses a plan naming anything else.
Processes (see executor/run.py for how they hand control to each other):
  runtime  the mrunc process on the host; it outlives the container and cleans up
  child    forked by runtime; joins cgroups and namespaces, then forks init
  init     pid 1 of the container; builds the rootfs, drops privileges, execs the user process
"""

# Plain classes, no dataclasses or typing: this module is on the exec path, and those imports (inspect, re,
# enum) cost more than the whole op loop. Type names are only for checkers, so annotations that use them are
# strings (not `from __future__ import annotations`: loading __future__ is ~0.1 ms of start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    OpFunc = Callable[..., None]

PROCESSES = ("runtime", "child", "init")


class Context:
    """What ops share within one process: pids learnt along the way and the host changes to undo."""

    child_pid: int = 0
    init_pid: int = 0  # init's pid on the host (also known inside init: hooks are told it)
    exec_fifo: int = -1  # O_PATH fd of the state dir's exec.fifo, inherited by init (ops_lifecycle)
    sync: "Any" = None  # child and init: the channel to runtime (run.py)
    pty_master: int = -1  # the terminal's master, in init until sent to runtime (ops_tty.py)
    pty_slave: int = -1
    pty_name: str = ""
    checked_program: "Any" = None  # (st_dev, st_ino) of the program check_program read (ops_process)
    program: "Any" = None  # the path recheck_program found and checked, which execve runs (ops_process)
    cwd_error: "Any" = None  # why chdir as root failed (OSError), for chdir_as_user (ops_process)
    ns_fds: "Any" = None  # child: namespace files opened before the joins, by path (ops_ns.open_ns_files)
    cgroup_tasks: "Any" = ()  # child, then init: v1 tasks files opened on the host (ops_cgroup.cgroup_open_tasks)
    # child and init: the plan's ops and the index of the one running (a startContainer hook's child takes the
    # process steps after it, ops_hooks)
    ops: "Any" = ()
    at: int = -1

    def __init__(self, **fields: "Any") -> None:
        self.undo: list[tuple[str, Callable[[], None]]] = []
        for name, value in fields.items():
            if not hasattr(Context, name):
                raise TypeError(f"Context has no field {name!r}")
            setattr(self, name, value)


class Op:
    """One entry of the op table; `run` is None for a protocol op the interpreter itself carries out.

    `syscalls`: what the op asks of the kernel every time it runs, each a name (x86_64, as libseccomp names it) or
    (name, arg0, arg1, ...) when leading arguments are fixed (prctl's option); `fallback`: what it asks only on
    its fallback path (its doc says when). Declared for the ops that may run after seccomp_load: the compiler and
    `verify` run these through the plan's own filter (compiler/seccomp_check.py). None: not declared, so the op
    may not follow the filter."""

    __slots__ = ("name", "procs", "args", "run", "doc", "syscalls", "fallback")

    def __init__(self, name: str, procs: tuple[str, ...], args: tuple[str, ...], run: "OpFunc | None",
                 doc: str, syscalls: "tuple | None" = None, fallback: tuple = ()) -> None:
        self.name, self.procs, self.args, self.run, self.doc = name, procs, args, run, doc
        self.syscalls, self.fallback = syscalls, fallback

    def __repr__(self) -> str:
        return f"Op({self.name!r}, procs={self.procs}, args={self.args})"


OPS: dict[str, Op] = {}


def op(name: str, procs: str, *args: str, syscalls: "tuple | None" = None,
       fallback: tuple = ()) -> "Callable[[OpFunc | None], OpFunc | None]":
    """Register an op. `procs` is a space-separated list of the processes allowed to run it; `syscalls` and
    `fallback`: see Op."""

    def register(func: "OpFunc | None") -> "OpFunc | None":
        doc = (func.__doc__ or "").strip().splitlines()[0] if func and func.__doc__ else ""
        OPS[name] = Op(name, tuple(procs.split()), args, func, doc, syscalls, fallback)
        return func

    return register


def protocol_op(name: str, procs: str, doc: str) -> None:
    OPS[name] = Op(name, tuple(procs.split()), (), None, doc)


# The modules that register ops. Every plan uses COMMON's ops; RARE's serve a few configs (engine pid files,
# process attributes, hooks, terminals, network devices, tmpfs copy-up, a limit whose controller the host lacks),
# cheapest first (but copy-up, which podman's --read-only and --tmpfs ask for, right after pid files). The exec path
# imports a RARE module only for a plan that names one of its ops (find), before anything runs: init cannot import
# after pivot_root, and each module is ~0.1 ms of start-up. `mrunc.executor.ops` imports them all: the complete
# table (compiler, verify).
COMMON_MODULES = ("ops_cgroup", "ops_fs", "ops_lifecycle", "ops_ns", "ops_process")
RARE_MODULES = ("ops_runtime", "ops_copyup", "ops_procattrs", "ops_hooks", "ops_tty", "ops_net", "ops_sharedmnt",
                "ops_cgroup_require")


def load(modules: tuple[str, ...]) -> None:
    for module in modules:
        __import__(f"mrunc.executor.{module}")


def find(name: str) -> Op | None:
    """The op called `name`, importing op modules in order, common ones first, until one has registered it."""
    for module in COMMON_MODULES + RARE_MODULES:
        if name in OPS:
            break
        load((module,))
    return OPS.get(name)
