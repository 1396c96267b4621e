"""The interpreter: run a checked plan's ops in order, handing control between three processes.

The plan is one list; each op names the process that runs it. One process runs ops at a time, but for the
runtime ops right after fork_init (v2's cgroup join), which runtime runs alongside init's first ops until init's
cgroup_joined (on v1, init joins by itself: cgroup_join_self). Control passes over a socketpair (close-on-exec)
with one-line messages:

    runtime (mrunc, host)            child                              init (container pid 1)
    ops ... `fork` ──fork()────────▶ ops (setns, unshare)
                   ◀─── "at N" ───── next op N is a runtime op (e.g. write_id_map)
    runs ops N.. ───── "go M" ─────▶ ops M.. (unshare, set_time_offsets)
                                     `fork_init` ──fork()─────────────▶ (new pid namespace: pid 1)
                   ◀─── "pid P" ──── then "!" on a pipe ──────────────▶ waits for the "!": runtime hears "pid"
                                     exits 0                            before any message of init's
                                                                        skips the runtime ops after fork_init
    runs the ops after fork_init                                        ops (mounts) while runtime runs them
      (v2: cgroup_attach), then ─ "go M" ─────────────────────────────▶ `cgroup_joined` waits for this "go"
                                                                        ops (devices, pivot_root, ids, caps)
                   ◀─── "pty NAME" + master fd (SCM_RIGHTS) ─────────── (process.terminal: pty_send_master)
                   ◀─── "at K" ──────────────────────────────────────── (hooks, pty_forward: runtime ops)
                   ───── "go L" ───────────────────────────────────────▶ ops L..
                   ◀─── "created W" ─────────────────────────────────── wait_start: blocks on exec.fifo
    create: writes state, exits 0 ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ▶ (until `mrunc start` reads the fifo)
    run/exec: reads the fifo itself ─────────────────────────────────────▶ startContainer hooks, execve
    `mrunc exec ID --detach` sends "created" at wait_runtime_exit and returns; init goes on at our EOF.
                   ◀─── EOF ─────────────────────────────────────────── execve closed its end of the socket
    poststart hooks; waits for P (child subreaper), forwards signals, undoes its host changes (cgroups),
    then poststop hooks. Only the container side may run ops after wait_start: create's runtime is gone.

    Any container-side failure sends "err N ERRNO MESSAGE" and exits 127; runtime kills what is left,
    undoes its changes and reports `op N/M [proc] name (src): args: ERRNO (message)`.

    EOF without "err" is not proof of execve: an init killed unreported (SIGKILL, the OOM killer) closes the
    socket too. init names itself "mrunc:[init]" at fork_init, and only execve renames it (right after closing
    close-on-exec fds); a dead init keeps the name as our zombie. So at EOF runtime waits for one or the other
    (ops_lifecycle.died_before_exec) and reports a death as a failure of the execve op.

Test hook (for the fault tests): MRUNC_FAULT_AT=N makes op N fail with EIO before it runs, in whichever
process runs it, so every failure path of a plan can be exercised; MRUNC_FAULT_AT=N:kill SIGKILLs that process
there instead (a runtime killed mid-setup). Unset, it costs one integer compare per op.
"""

import _signal as signal  # `signal` wraps it in enums: enum alone costs ms at start-up
import errno as errno_names
import os
import sys

from mrunc.executor import libc, ops_lifecycle
from mrunc.executor.optable import Context, find

_fault, _, _how = os.environ.get("MRUNC_FAULT_AT", "").partition(":")
FAULT_AT = int(_fault) if _fault.isdigit() else -1
FAULT_KILLS = _how == "kill"

TYPE_CHECKING = False  # exec path: no typing/collections imports at run time, nor __future__ (optable.py)
if TYPE_CHECKING:
    from collections.abc import Callable

# What the executor itself may make in init between ops once seccomp_load has run (the ops' own are declared in
# the op table); compiler/seccomp_check.py runs them through the plan's filter:
# - always possible: the interpreter's allocator (glibc malloc's brk, pymalloc's arenas and large blocks by
#   mmap/munmap) when the heap must grow or shrink. Not seen in an strace of the ops after the filter, but nothing
#   rules it out (mremap serves reallocs of 128 KiB blocks and up, which nothing after the filter makes);
# - a runtime op after the filter: "at N" (sendmsg) and the wait for runtime's "go" (recvmsg);
# - only when an op fails: the report to runtime (sendmsg; stderr if that fails: write) and _exit (exit_group).
# --trace writes nothing after the filter: the lines of the ops after it are printed before it loads.
AFTER_FILTER_ALWAYS = ("brk", "mmap", "munmap")
AFTER_FILTER_HANDOVER = ("sendmsg", "recvmsg")
AFTER_FILTER_ON_FAILURE = ("sendmsg", "write", "exit_group")

FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT)


class OpFailed(Exception):
    """An op failed; str() is the one-line report the user sees."""

    def __init__(self, ops: list[dict], index: int, err: int, detail: str) -> None:
        self.index, self.errno, self.detail = index, err, detail
        o = ops[index]
        name = errno_names.errorcode.get(err, "ERROR") if err else "ERROR"
        super().__init__(
            f"op {index}/{len(ops)} [{o['proc']}] {o['op']} ({o['src']}): {describe_args(o['args'])}: "
            f"{name} ({detail})")


def describe_args(args: dict) -> str:
    parts = []
    for key, value in args.items():
        text = value if isinstance(value, str) and "\n" not in value else repr(value)  # a report is one line
        if len(text) > 60:
            text = text[:57] + "..."
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _trace(ops: list[dict], i: int, note: str = "") -> None:
    o = ops[i]
    print(f"mrunc: op {i}/{len(ops)} [{o['proc']}] {o['op']} {describe_args(o['args'])}{note}", file=sys.stderr,
          flush=True)


def _inject_fault(ops: list[dict], i: int) -> None:
    if i == FAULT_AT:
        if FAULT_KILLS:  # a pid namespace's init ignores its own SIGKILL: it then exits just as abruptly
            os.kill(os.getpid(), signal.SIGKILL)
            os._exit(128 + signal.SIGKILL)
        raise OpFailed(ops, i, errno_names.EIO, "fault injected by MRUNC_FAULT_AT")


def _run_op(ops: list[dict], i: int, ctx: Context, trace: bool) -> None:
    if trace:
        _trace(ops, i)
    _inject_fault(ops, i)
    o = ops[i]
    try:
        find(o["op"]).run(ctx, **o["args"])  # type: ignore[union-attr]
    except OSError as e:
        detail = e.strerror or str(e)
        if e.filename:
            detail += f": {e.filename}"
        raise OpFailed(ops, i, e.errno or 0, detail) from None
    except Exception as e:  # a bad value in a plan edited by hand, say
        raise OpFailed(ops, i, 0, f"{type(e).__name__}: {e}") from None


class _Channel:
    """Line messages over the sync socket, by fd (libc.socketpair: not _socket, ~0.3 ms of start-up)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.fds: list[int] = []  # fds that came with messages (SCM_RIGHTS), oldest first

    def send(self, line: str, fd: int | None = None) -> None:
        data = line.replace("\n", " ").encode() + b"\n"
        sent = libc.sendmsg(self.fd, data, [] if fd is None else [fd])
        while sent < len(data):
            sent += os.write(self.fd, data[sent:])

    def recv(self) -> str | None:
        while b"\n" not in self.buffer:
            try:
                chunk, fds = libc.recvmsg(self.fd, 4096, max_fds=4)
            except ConnectionResetError:  # the peer died with a message of ours unread: it is gone, as at EOF
                return None
            self.fds += fds
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        os.close(self.fd)


def execute(plan: dict, trace: bool = False, created: "Callable[[int], None] | None" = None,
            detach: bool = False) -> int:
    """Run the plan; return the container's exit status (128+N if killed by signal N).

    When init reaches wait_start (or execve, in a plan without it), `created(init_pid)` is called (create
    records the state). With `detach` we return 0 there, leaving init blocked until `mrunc start` and the
    host changes for `mrunc delete`; otherwise we start the container ourselves and clean up after it.
    """
    ops = plan["ops"]
    for o in [*ops, *plan.get("poststart", []), *plan.get("poststop", [])]:
        find(o["op"])  # its module, now: init cannot import after pivot_root (plan.check has loaded them, if it ran)
    ctx = Context()
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)  # init is reparented to us when child exits
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda signum, frame: _forward(ctx, signum))
    started = False
    try:
        i = 0
        while ops[i]["op"] != "fork":
            _run_op(ops, i, ctx, trace)
            i += 1
        _start_container(plan, ctx, i, trace, created, detach)
        if detach:
            ctx.undo.clear()  # the container outlives us; delete undoes its host changes from the stored plan
            return 0
        started = True
        run_after(plan.get("poststart", []), ctx, trace)
        return _wait(ctx)
    except BaseException:
        _kill(ctx)
        raise
    finally:
        _undo(ctx)
        if started:
            run_after(plan.get("poststop", []), ctx, trace)


def _warn(message: str) -> None:
    print(f"mrunc: warning: {message}", file=sys.stderr, flush=True)


def run_after(ops: list[dict], ctx: Context, trace: bool = False, warn: "Callable[[str], None]" = _warn) -> None:
    """poststart/poststop ops: by the spec a failure there is a warning, not an error."""
    for i in range(len(ops)):
        try:
            _run_op(ops, i, ctx, trace)
        except OpFailed as e:
            warn(str(e))


def _start_container(plan: dict, ctx: Context, fork_index: int, trace: bool,
                     created: "Callable[[int], None] | None", detach: bool) -> None:
    """Fork child, then serve its "at N" requests until execve closes the socket (or init waits, detached)."""
    ops = plan["ops"]
    fork_init = next(i for i, o in enumerate(ops) if o["op"] == "fork_init")
    _protocol_op(ops, fork_index, trace)
    ours, theirs = libc.socketpair()
    pid = os.fork()
    if pid == 0:
        os.close(ours)
        sync = _Channel(theirs)
        _container_side(ops, fork_index + 1, sync, trace, Context(sync=sync, exec_fifo=ctx.exec_fifo, ops=ops))
    os.close(theirs)
    if ctx.exec_fifo >= 0:
        os.close(ctx.exec_fifo)  # init's alone now: start finds no reader once init has gone
        ctx.exec_fifo = -1
    ctx.child_pid = pid
    channel = _Channel(ours)
    not_started: OpFailed | None = None
    try:
        while (message := channel.recv()) is not None:
            kind, _, rest = message.partition(" ")
            if kind == "pid":
                ctx.init_pid = int(rest)
                i = fork_init + 1
                if ops[i]["proc"] == "runtime":  # they run alongside init, which waits for them at cgroup_joined
                    next_op = _run_runtime_ops(ops, i, ctx, trace)
                    try:
                        channel.send(f"go {next_op}")
                    except BrokenPipeError:  # init failed meanwhile: its "err" is next on the socket
                        pass
            elif kind == "pty":
                ctx.pty_master, ctx.pty_name = channel.fds.pop(0), rest
            elif kind == "at":
                channel.send(f"go {_run_runtime_ops(ops, int(rest), ctx, trace)}")
            elif kind == "created":
                if created:
                    created(ctx.init_pid)
                    created = None
                if detach:
                    return
                try:
                    ops_lifecycle.release(ops[int(rest)]["args"]["path"], wait_for_exec=False)
                except OSError as e:  # init died: it says why on the socket, if it could
                    not_started = OpFailed(ops, int(rest), e.errno or 0, e.strerror or str(e))
            elif kind == "err":
                index, err, text = rest.split(" ", 2)
                raise OpFailed(ops, int(index), int(err), text)
        if not ctx.init_pid:
            raise OpFailed(ops, fork_index, 0, "the child process died during setup")
        if not_started:
            raise not_started
        waits = next((i for i, o in enumerate(ops) if o["op"] == "wait_start"), None)
        if created and waits is not None:  # EOF before "created": init died, it did not execve
            raise OpFailed(ops, waits, 0, "init died during setup, before it reached wait_start")
        # EOF and no "err": init's end closed at execve (close-on-exec) or as it died unreported (SIGKILL, the
        # OOM killer); only execve renames it, so its name tells which.
        if death := ops_lifecycle.died_before_exec(ctx.init_pid):
            raise OpFailed(ops, len(ops) - 1, 0, f"init {death} during setup, before execve")
        if created:  # a plan without wait_start: the container is created and started at execve
            created(ctx.init_pid)
    finally:
        channel.close()


def _run_runtime_ops(ops: list[dict], i: int, ctx: Context, trace: bool) -> int:
    """Run runtime's ops from i on; return the index of the next container-side op."""
    while ops[i]["proc"] == "runtime":
        _run_op(ops, i, ctx, trace)
        i += 1
    return i


def _container_side(ops: list[dict], start: int, channel: _Channel, trace: bool, ctx: Context) -> None:
    """Child and then init: run our ops, yield to runtime for its ops, never return."""
    i = start
    try:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        while True:
            o = ops[i]
            if o["proc"] == "runtime":
                channel.send(f"at {i}")
                i = _await_go(channel)
            elif o["op"] == "fork_init":
                _protocol_op(ops, i, trace)
                told, tell = os.pipe()  # init waits until runtime has its pid: nothing of init's may come first
                pid = os.fork()
                if pid:
                    channel.send(f"pid {pid}")  # on v2, runtime starts the runtime ops after fork_init at this
                    os.write(tell, b"!")
                    os._exit(0)
                os.close(tell)
                if os.read(told, 1) != b"!":
                    os._exit(127)  # child died before it told runtime: runtime reports it
                os.close(told)
                ctx.init_pid = ops_lifecycle.host_pid()
                libc.set_name(ops_lifecycle.INIT_NAME)  # until execve: how runtime tells execve from death
                i += 1
                while ops[i]["proc"] == "runtime":
                    i += 1
            elif o["op"] == "cgroup_joined":
                _protocol_op(ops, i, trace)
                _await_go(channel)
                i += 1
            else:
                if o["op"] in ("wait_start", "wait_runtime_exit"):  # a detached runtime returns here
                    channel.send(f"created {i}")
                if trace and o["op"] == "seccomp_load":  # the filter may deny write(2): trace what follows now
                    _trace(ops, i)
                    for j in range(i + 1, len(ops)):
                        _trace(ops, j, " (traced before seccomp_load, which may deny the write)")
                    trace = False
                ctx.at = i
                _run_op(ops, i, ctx, trace)
                i += 1
    except OpFailed as failure:
        _report(channel, f"err {failure.index} {failure.errno} {failure.detail}", str(failure))
    except BaseException as e:  # never let a traceback or a second interpreter escape a fork
        _report(channel, f"err {i} 0 {type(e).__name__}: {e}", f"op {i}: {type(e).__name__}: {e}")
    os._exit(127)


def _await_go(channel: _Channel) -> int:
    """Runtime's "go M": the op to go on at. If runtime went away or failed instead, exit: it reports why."""
    reply = channel.recv()
    if reply is None or not reply.startswith("go "):
        os._exit(127)
    return int(reply[3:])


def _protocol_op(ops: list[dict], i: int, trace: bool) -> None:
    """What _run_op does before an op, for the ops the protocol itself carries out."""
    if trace:
        _trace(ops, i)
    _inject_fault(ops, i)


def _report(channel: _Channel, message: str, text: str) -> None:
    """Tell runtime; once a created container was started, runtime is gone: say it on stderr instead."""
    try:
        channel.send(message)
    except OSError:
        try:
            print(f"mrunc: {text}", file=sys.stderr, flush=True)
        except OSError:
            pass


def _forward(ctx: Context, signum: int) -> None:
    target = ctx.init_pid or ctx.child_pid
    if target:
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass


def _wait(ctx: Context) -> int:
    """Reap until init exits (child and orphans are reaped on the way, as subreaper)."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == ctx.init_pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def _kill(ctx: Context) -> None:
    for pid in (ctx.init_pid, ctx.child_pid):
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pid in (ctx.init_pid, ctx.child_pid):
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _undo(ctx: Context) -> None:
    for what, action in reversed(ctx.undo):
        try:
            action()
        except OSError as e:
            print(f"mrunc: warning: cleanup {what}: {e.strerror}", file=sys.stderr)
    ctx.undo.clear()
