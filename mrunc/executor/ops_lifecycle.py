"""Lifecycle ops: the exec fifo that holds init until `mrunc start`, and config hooks.

create makes ROOT/ID/exec.fifo and opens it before fork, so init holds it without needing the path
(hidden by pivot_root) or /proc (a config may mount none). Opened read-write, it never reads as hung up:
init's read just before execve (wait_start) blocks until `mrunc start` writes one byte and removes the
fifo (release). A start that finds no reader knows init is gone.

Ops that run in init after pivot_root cannot import anything (the host's stdlib is out of sight): only
built-in modules and modules imported beforehand may be used here.
"""

import _json  # already loaded on the exec path (plan.py); its string encoder writes the hooks' state JSON
import _signal  # built in and loaded at interpreter start (signal.py would import enum)
import errno
import os
import time

from mrunc.executor.optable import Context, op

TYPE_CHECKING = False  # exec path: no typing/collections imports at run time, nor __future__ (optable.py)
if TYPE_CHECKING:
    from collections.abc import Callable

SIGKILL = 9
# A created container's init is pid 1 of its pid namespace, which the kernel spares every signal it has no
# handler for. runc's waiting init (Go) exits on these, so `kill ID TERM` stops a created container there.
STOPPING_SIGNALS = (1, 2, 3, 15)  # HUP, INT, QUIT, TERM
INIT_NAME = "mrunc:[init]"  # init's name (comm) from fork_init until execve names it after the program
# The status a hook of each kind sees on stdin (runtime-spec runtime.md, "Lifecycle").
HOOK_STATUS = {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
               "startContainer": "created", "poststart": "running", "poststop": "stopped"}


@op("exec_fifo_create", "runtime", "path")
def exec_fifo_create(ctx: Context, path: str) -> None:
    """mkfifo the exec fifo and open it read-write (that never blocks); init inherits the fd."""
    os.mkfifo(path, 0o600)
    ctx.undo.append((f"unlink {path}", lambda: _unlink_if_there(path)))  # start removes it first
    ctx.exec_fifo = os.open(path, os.O_RDWR | os.O_CLOEXEC)


def _unlink_if_there(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@op("wait_start", "init", "path")
def wait_start(ctx: Context, path: str) -> None:
    """Block reading the exec fifo (by the inherited fd) until `mrunc start` writes its byte. Until execve
    resets them, STOPPING_SIGNALS end init, as they end runc's."""
    for signum in STOPPING_SIGNALS:
        _signal.signal(signum, _exit_on_signal)
    while os.read(ctx.exec_fifo, 1) != b"0":
        pass
    # The fd stays open: it closes on execve (close-on-exec), which is how `start` knows the exec happened.


def _exit_on_signal(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def release(path: str, wait_for_exec: bool) -> None:
    """Write init's byte into the exec fifo and remove the fifo. `start` waits until init has exec'd (or
    died), so poststart hooks run after the user process started, as the spec orders; a foreground run
    does not (it may still owe init runtime ops, and runs poststart once execve closed the sync socket).
    OSError(ESRCH) if init is gone before the byte is written.

    How start sees the exec: init's fd on the fifo is close-on-exec. start keeps a reader of its own (it
    never reads, so the byte stays init's) and polls it for POLLHUP, which a fifo reader gets once no writer
    is left, provided a writer opened after the reader did (hence the second writer).
    """
    probe = _open_writer(path)
    try:
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            writer = _open_writer(path)
            try:
                os.write(writer, b"0")
            finally:
                os.close(writer)
            os.close(probe)
            probe = -1
            os.unlink(path)
            if not wait_for_exec:
                return
            import select  # `start` and runtime run this on the host: select is there, and no one else needs it

            waiter = select.poll()
            waiter.register(reader, 0)  # no events asked: poll returns on POLLHUP alone
            waiter.poll()
        finally:
            os.close(reader)
    finally:
        if probe >= 0:
            os.close(probe)


def died_before_exec(pid: int, timeout: float = 5) -> str | None:
    """Once init's close-on-exec fds have closed (at execve, or as it died unreported: SIGKILL, the OOM
    killer): None if it went through execve, else how it died. execve renames init after its program just
    after closing those fds; a death keeps the name, and the zombie shows it until we (its reaper) wait for
    it. So poll until the name changes or init is our zombie."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return "is gone"
        end = stat.rindex(")")
        if stat[stat.index("(") + 1:end] != INIT_NAME:
            return None
        if stat[end + 2] in "ZX" and (how := _how_it_ended(pid)):
            return how
        if time.monotonic() > deadline:  # still not renamed: it did not execve
            return "died"
        time.sleep(0.0002)


def _how_it_ended(pid: int) -> str | None:
    """How a zombie child ended (it stays a zombie: the caller reaps it); None until it is ours (its parent,
    mrunc's child process, may still be exiting and handing it to us, the subreaper)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return f"exited with status {info.si_status}"
    return f"was killed by signal {info.si_status}"


def _open_writer(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno != errno.ENXIO:  # ENXIO: no reader, so init has exited
            raise
        raise OSError(errno.ESRCH, "the container's init exited before it was started") from None


@op("hook", "runtime init", "kind", "path", "args", "env", "timeout", "state")
def hook(ctx: Context, kind: str, path: str, args: list[str], env: list[str] | None, timeout: int | None,
         state: dict) -> None:
    """Run a config hook, state JSON on stdin, in a session of its own; killed (the whole session) after
    `timeout` seconds. Its stdout and stderr are kept for the error message."""
    stdin = _state_json({**state, "status": HOOK_STATUS[kind], "pid": ctx.init_pid})
    environ = os.environ if env is None else dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    status, output = _run(path, args or [path], environ, stdin, timeout)
    if status is None:
        raise OSError(errno.ETIMEDOUT, f"{kind} hook {path} timed out after {timeout}s")
    if status:
        text = output.decode(errors="replace").strip()[-300:]
        raise OSError(0, f"{kind} hook {path} exited with status {status}" + (f": {text}" if text else ""))


def _state_json(state: dict) -> bytes:
    """json.dumps without the json module: strings, ints and one level of string-valued objects."""
    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{_json.encode_basestring_ascii(k)}: {value(x)}" for k, x in v.items()) + "}"
        return str(v) if isinstance(v, int) else _json.encode_basestring_ascii(str(v))
    return value(state).encode()


def _run(path: str, argv: list[str], environ: dict, stdin: bytes, timeout: int | None) -> tuple[int | None, bytes]:
    """fork + execve (subprocess cannot be imported after pivot_root); exit status, or None on timeout."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.execve(path, argv, environ)
        except OSError as e:
            os.write(2, f"{path}: {e.strerror}\n".encode())
        finally:
            os._exit(127)
    os.close(in_r)
    os.close(out_w)
    try:
        os.write(in_w, stdin)  # a few hundred bytes: fits the pipe even if the hook never reads it
    except BrokenPipeError:
        pass
    os.close(in_w)
    os.set_blocking(out_r, False)
    output, deadline = b"", time.monotonic() + timeout if timeout else None
    while True:
        output = (output + _drain(out_r))[-4096:]
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            os.close(out_r)
            return os.waitstatus_to_exitcode(status), output
        if deadline and time.monotonic() > deadline:
            os.killpg(pid, SIGKILL)
            os.waitpid(pid, 0)
            os.close(out_r)
            return None, output
        time.sleep(0.005)


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


def host_pid() -> int:
    """This process's pid on the host, read before /proc is the container's (NSpid lists outermost first)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return os.getpid()


def wait_gone(alive: "Callable[[], bool]", seconds: float) -> bool:
    """Poll until `alive()` is false; False if it is still alive after `seconds`."""
    deadline = time.monotonic() + seconds
    while alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (/proc/PID/stat field 22); None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Is `pid` running (and, given its start time, still the same process rather than a reused pid)?"""
    now = start_time(pid) if pid > 0 else None
    return now is not None and (started is None or now == started)
