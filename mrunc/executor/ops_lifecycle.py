"""Lifecycle ops: the exec fifo that holds init until `mrunc start` (config hooks: ops_hooks.py).

create makes ROOT/ID/exec.fifo and opens it before fork, so init holds it without needing the path
(hidden by pivot_root) or /proc (a config may mount none). Opened read-write, it never reads as hung up:
init's read just before execve (wait_start) blocks until `mrunc start` writes one byte and removes the
fifo (release). A start that finds no reader knows init is gone.

Ops that run in init after pivot_root cannot import anything (the host's stdlib is out of sight): only
built-in modules and modules imported beforehand may be used here.
"""

import _signal  # built in and loaded at interpreter start (signal.py would import enum)
import errno
import os
import time

from mrunc.executor.optable import Context, op

TYPE_CHECKING = False  # exec path: no typing/collections imports at run time, nor __future__ (optable.py)
if TYPE_CHECKING:
    from collections.abc import Callable

# A created container's init is pid 1 of its pid namespace, which the kernel spares every signal it has no
# handler for. runc's waiting init (Go) exits on these, so `kill ID TERM` stops a created container there.
STOPPING_SIGNALS = (1, 2, 3, 15)  # HUP, INT, QUIT, TERM
INIT_NAME = "mrunc:[init]"  # init's name (comm) from fork_init until execve names it after the program


@op("default_signals", "init", syscalls=("rt_sigaction",))
def default_signals(ctx: Context) -> None:
    """SIGPIPE and SIGXFSZ back to their defaults: Python ignores both, and execve keeps what is ignored."""
    restore_default_signals()


def restore_default_signals() -> None:
    """A program runc starts has every signal at its default (`yes | head` ends by SIGPIPE): undo what Python
    ignores in itself, just before execve (of the container's process, or of a hook)."""
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(sig, _signal.SIG_DFL)


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


@op("wait_start", "init", "path", syscalls=("sendmsg", "rt_sigaction", "read"))  # sendmsg: run.py's "created"
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
    pause = 0.00025  # doubling up to 10 ms: a killed process is mostly gone within the first ms
    while alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
    return True
