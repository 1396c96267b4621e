"""Terminal ops: a pty whose slave becomes the container's controlling terminal and stdio.

init opens the pty inside the container (its /dev/ptmx, so the pair belongs to the container's devpts),
hands the master to runtime over the sync socket, and makes the slave its stdio. runtime then either sends
the master on to the engine's console socket (SCM_RIGHTS, one message, as runc does) or relays it itself.
"""

import _signal as signal  # not `signal`/`socket` at import: they pull in enum, ms of exec's start-up
import fcntl
import os
import struct
import sys

from mrunc.executor import libc
from mrunc.executor.optable import Context, op

TIOCSCTTY = 0x540E  # termios' values, as numbers: termios is loaded only by a relaying runtime
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414
TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441
MS_BIND = 0x1000
DRAIN_SECONDS = 2.0  # after the container exits, how long to wait for its last output on the master


@op("setsid", "init")
def setsid(ctx: Context) -> None:
    """setsid(2): a new session with no controlling terminal, so the pty slave can become it."""
    os.setsid()


@op("pty_open", "init")
def pty_open(ctx: Context) -> None:
    """Open /dev/ptmx, unlock it (TIOCSPTLCK) and open its slave through the master (TIOCGPTPEER)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    ctx.pty_master = master
    ctx.pty_slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    ctx.pty_name = f"/dev/pts/{number}"


@op("pty_resize", "init", "rows", "cols")
def pty_resize(ctx: Context, rows: int, cols: int) -> None:
    """ioctl(TIOCSWINSZ) on the slave: the terminal's size (process.consoleSize)."""
    fcntl.ioctl(ctx.pty_slave, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@op("console_mount", "init")
def console_mount(ctx: Context) -> None:
    """Bind the pty slave onto /dev/console (created empty if missing), as runc does."""
    fd = os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    libc.mount(f"/proc/self/fd/{ctx.pty_slave}", "/dev/console", None, MS_BIND, None)


@op("pty_send_master", "init")
def pty_send_master(ctx: Context) -> None:
    """Send the master to runtime over the sync socket (SCM_RIGHTS) and close our copy."""
    ctx.sync.send(f"pty {ctx.pty_name}", ctx.pty_master)
    os.close(ctx.pty_master)
    ctx.pty_master = -1


@op("pty_stdio", "init")
def pty_stdio(ctx: Context) -> None:
    """dup2 the slave onto fds 0, 1, 2, then ioctl(TIOCSCTTY): it becomes our controlling terminal."""
    for fd in (0, 1, 2):
        os.dup2(ctx.pty_slave, fd)
    fcntl.ioctl(0, TIOCSCTTY, 0)
    os.close(ctx.pty_slave)
    ctx.pty_slave = -1


@op("pty_forward", "runtime", "socket")
def pty_forward(ctx: Context, socket: str) -> None:
    """Connect to the console socket, send the master with the pty's name in one SCM_RIGHTS message, close."""
    _send_fd(socket, ctx.pty_name, ctx.pty_master)
    os.close(ctx.pty_master)
    ctx.pty_master = -1


def _send_fd(path: str, name: str, fd: int) -> None:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        socket.send_fds(s, [name.encode()], [fd])


@op("pty_relay", "runtime")
def pty_relay(ctx: Context) -> None:
    """Relay between our stdio and the master until the container exits; follow our terminal's size."""
    relay = _Relay(ctx.pty_master)
    ctx.pty_master = -1
    ctx.undo.append(("pty relay", relay.finish))


class _Relay:
    """Two copying threads; stdin raw while we relay, restored after. SIGWINCH resizes the pty."""

    def __init__(self, master: int) -> None:
        import termios  # only a relaying runtime needs these
        import threading
        import tty

        self.master = master
        self.saved_mode = termios.tcgetattr(0) if os.isatty(0) else None
        if self.saved_mode is not None:
            tty.setraw(0)
            self.resize()
            signal.signal(signal.SIGWINCH, lambda signum, frame: self.resize())
        sys.stdout.flush()
        self.output = threading.Thread(target=self._copy_out, daemon=True)
        self.output.start()
        threading.Thread(target=self._copy_in, daemon=True).start()

    def resize(self) -> None:
        fcntl.ioctl(self.master, TIOCSWINSZ, fcntl.ioctl(0, TIOCGWINSZ, b"\0" * 8))

    def _copy_in(self) -> None:
        try:
            while data := os.read(0, 4096):
                os.write(self.master, data)
        except OSError:
            pass

    def _copy_out(self) -> None:
        try:
            while data := os.read(self.master, 4096):  # EIO once every slave fd is closed
                while data:
                    data = data[os.write(1, data):]
        except OSError:
            pass

    def finish(self) -> None:
        self.output.join(DRAIN_SECONDS)
        if self.saved_mode is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_mode)
        os.close(self.master)
