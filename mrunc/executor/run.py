"""The interpreter: run a checked plan's ops in order, handing control between three processes.

The plan is one list; each op names the process that runs it. Exactly one process is running ops at a
time. Control passes over a socketpair (close-on-exec) with one-line messages:

    runtime (mrunc, host)            child                              init (container pid 1)
    ops ... `fork` ──fork()────────▶ ops (cgroup_enter, setns, unshare)
                   ◀─── "at N" ───── next op N is a runtime op (e.g. write_id_map)
    runs ops N.. ───── "go M" ─────▶ ops M.. (unshare, set_time_offsets)
                                     `fork_init` ──fork()─────────────▶ (new pid namespace: pid 1)
                   ◀─── "pid P" ──── exits 0                           ops (mounts, pivot_root, ids, caps)
                   ◀─── "pty NAME" + master fd (SCM_RIGHTS) ─────────── (process.terminal: pty_send_master)
                   ◀─── "at K" ──────────────────────────────────────── (hooks, pty_forward: runtime ops)
                   ───── "go L" ───────────────────────────────────────▶ ops L..
                   ◀─── EOF ─────────────────────────────────────────── execve closed its end of the socket
    waits for P (child subreaper), forwards signals, then undoes its host changes (cgroups).

    Any container-side failure sends "err N ERRNO MESSAGE" and exits 127; runtime kills what is left,
    undoes its changes and reports `op N/M [proc] name (src): args: ERRNO (message)`.

Test hook (for the fault tests): MRUNC_FAULT_AT=N makes op N fail with EIO before it runs, in whichever
process runs it, so every failure path of a plan can be exercised. Unset, it costs one integer compare per op.
"""

import _signal as signal  # `signal` and `socket` wrap these in enums: enum alone costs ms at start-up
import _socket as socket
import errno as errno_names
import os
import sys

from mrunc.executor import libc
from mrunc.executor.ops import OPS, Context

_fault = os.environ.get("MRUNC_FAULT_AT", "")
FAULT_AT = int(_fault) if _fault.isdigit() else -1
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


def _trace(ops: list[dict], i: int) -> None:
    o = ops[i]
    print(f"mrunc: op {i}/{len(ops)} [{o['proc']}] {o['op']} {describe_args(o['args'])}", file=sys.stderr,
          flush=True)


def _inject_fault(ops: list[dict], i: int) -> None:
    if i == FAULT_AT:
        raise OpFailed(ops, i, errno_names.EIO, "fault injected by MRUNC_FAULT_AT")


def _run_op(ops: list[dict], i: int, ctx: Context, trace: bool) -> None:
    if trace:
        _trace(ops, i)
    _inject_fault(ops, i)
    o = ops[i]
    try:
        OPS[o["op"]].run(ctx, **o["args"])  # type: ignore[misc]
    except OSError as e:
        detail = e.strerror or str(e)
        if e.filename:
            detail += f": {e.filename}"
        raise OpFailed(ops, i, e.errno or 0, detail) from None
    except Exception as e:  # a bad value in a plan edited by hand, say
        raise OpFailed(ops, i, 0, f"{type(e).__name__}: {e}") from None


class _Channel:
    """Line messages over the sync socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.fds: list[int] = []  # fds that came with messages (SCM_RIGHTS), oldest first

    def send(self, line: str, fd: int | None = None) -> None:
        data = line.replace("\n", " ").encode() + b"\n"
        if fd is None:
            self.sock.sendall(data)
        else:
            self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])

    def recv(self) -> str | None:
        while b"\n" not in self.buffer:
            chunk, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC)
            self.fds += _fds_of(ancillary)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()



def _fds_of(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The fds an SCM_RIGHTS message carried (what socket.recv_fds returns, without importing socket)."""
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(data[i:i + 4], sys.byteorder) for i in range(0, len(data) - len(data) % 4, 4)]
    return fds


def execute(plan: dict, trace: bool = False) -> int:
    """Run the plan in the foreground; return the container's exit status (128+N if killed by signal N)."""
    ops = plan["ops"]
    ctx = Context()
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)  # init is reparented to us when child exits
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda signum, frame: _forward(ctx, signum))
    try:
        i = 0
        while ops[i]["op"] != "fork":
            _run_op(ops, i, ctx, trace)
            i += 1
        _start_container(plan, ctx, i, trace)
        return _wait(ctx)
    except BaseException:
        _kill(ctx)
        raise
    finally:
        _undo(ctx)


def _start_container(plan: dict, ctx: Context, fork_index: int, trace: bool) -> None:
    """Fork child, then serve its "at N" requests until execve closes the socket."""
    ops = plan["ops"]
    if trace:
        _trace(ops, fork_index)
    _inject_fault(ops, fork_index)
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        _container_side(ops, fork_index + 1, _Channel(theirs), trace)
    theirs.close()
    ctx.child_pid = pid
    channel = _Channel(ours)
    try:
        while (message := channel.recv()) is not None:
            kind, _, rest = message.partition(" ")
            if kind == "pid":
                ctx.init_pid = int(rest)
            elif kind == "pty":
                ctx.pty_master, ctx.pty_name = channel.fds.pop(0), rest
            elif kind == "at":
                i = int(rest)
                while ops[i]["proc"] == "runtime":
                    _run_op(ops, i, ctx, trace)
                    i += 1
                channel.send(f"go {i}")
            elif kind == "err":
                index, err, text = rest.split(" ", 2)
                raise OpFailed(ops, int(index), int(err), text)
        if not ctx.init_pid:
            raise OpFailed(ops, fork_index, 0, "the child process died during setup")
    finally:
        ours.close()


def _container_side(ops: list[dict], start: int, channel: _Channel, trace: bool) -> None:
    """Child and then init: run our ops, yield to runtime for its ops, never return."""
    ctx = Context(sync=channel)
    i = start
    try:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        while True:
            o = ops[i]
            if o["proc"] == "runtime":
                channel.send(f"at {i}")
                reply = channel.recv()
                if reply is None or not reply.startswith("go "):
                    os._exit(127)  # runtime went away or failed; it reports why
                i = int(reply[3:])
            elif o["op"] == "fork_init":
                if trace:
                    _trace(ops, i)
                _inject_fault(ops, i)
                pid = os.fork()
                if pid:
                    channel.send(f"pid {pid}")
                    os._exit(0)
                i += 1
            else:
                _run_op(ops, i, ctx, trace)
                i += 1
    except OpFailed as failure:
        channel.send(f"err {failure.index} {failure.errno} {failure.detail}")
    except BaseException as e:  # never let a traceback or a second interpreter escape a fork
        channel.send(f"err {i} 0 {type(e).__name__}: {e}")
    os._exit(127)


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
