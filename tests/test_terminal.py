"""process.terminal: a pty as the container's controlling terminal, relayed by mrunc or sent to a console socket."""

import fcntl
import os
import select
import socket
import struct
import subprocess
import sys
import termios
import time

from tests.conftest import REPO, base_config, run_config

TTY_SCRIPT = "tty; stty size; echo ctty > /dev/tty && echo has-ctty; read line; echo got:$line; exit 3"


def tty_config(script: str = TTY_SCRIPT) -> dict:
    config = base_config(["sh", "-c", script])
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 37, "width": 101}
    return config


def test_foreground_run_relays_the_pty_both_ways(bundle):
    result = run_config(bundle, tty_config(), input="hello\n")
    lines = result.stdout.replace("\r\n", "\n").splitlines()
    assert "/dev/pts/0" in lines, result
    assert "37 101" in lines
    assert "has-ctty" in lines
    assert "got:hello" in lines
    assert result.returncode == 3


def test_console_is_the_pty_slave(bundle):
    result = run_config(bundle, tty_config("stat -c '%t:%T' /dev/console /dev/pts/0"))
    console, slave = result.stdout.split()
    assert console == slave == "88:0", result  # major 136 (hex 88): a pty slave


def test_master_is_sent_to_the_console_socket(bundle, tmp_path):
    bundle.write(tty_config())
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        listener.settimeout(30)
        command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc", "--root",
                   str(bundle.state_root), "run", "--console-socket", path, "--bundle", str(bundle.path), bundle.id]
        proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            conn, _ = listener.accept()
            with conn:
                name, fds, _, _ = socket.recv_fds(conn, 1024, 4)
                assert conn.recv(1) == b""  # one message, then the runtime closes the socket
        except BaseException:
            proc.kill()
            print(proc.communicate())
            raise
    assert name == b"/dev/pts/0"
    assert len(fds) == 1
    master = fds[0]
    os.write(master, b"typed\n")
    output = _read_until_hangup(master)
    assert proc.wait(timeout=30) == 3, proc.stderr.read()
    assert proc.stdout.read() == ""  # the container's stdio is the pty, not mrunc's
    lines = output.replace("\r\n", "\n").splitlines()
    assert "37 101" in lines and "has-ctty" in lines and "got:typed" in lines, output


def _read_until_hangup(master: int) -> str:
    chunks = []
    try:
        while data := os.read(master, 4096):
            chunks.append(data)
    except OSError:  # EIO: the last slave fd closed
        pass
    os.close(master)
    return b"".join(chunks).decode()


def test_relay_follows_the_outer_terminal_size_and_restores_its_mode(bundle):
    """mrunc on a terminal of its own (as a person runs it): the container starts with that terminal's size,
    sees it change (SIGWINCH), and the terminal's mode is as it was afterwards (raw only while relaying)."""
    bundle.write(tty_config("stty size; trap 'stty size; exit 0' WINCH; echo ready; while true; do sleep 0.05; done"))
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 70, 0, 0))
    mode = termios.tcgetattr(slave)
    command = ["setsid", "--ctty", "unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc",
               "--root", str(bundle.state_root), "run", "--bundle", str(bundle.path), bundle.id]
    proc = subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=slave, stdout=slave,
                            stderr=slave)
    try:
        output = _read_until(master, "ready")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))  # SIGWINCH to mrunc
        output += _read_until(master, "33 111")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "20 70" in output  # the outer terminal's size, not consoleSize (as runc does)
    assert termios.tcgetattr(slave) == mode
    os.close(master)
    os.close(slave)


def _read_until(master: int, text: str, seconds: float = 20) -> str:
    output = ""
    deadline = time.monotonic() + seconds
    while text not in output:
        assert time.monotonic() < deadline, output
        if select.select([master], [], [], 0.2)[0]:
            output += os.read(master, 4096).decode(errors="replace")
    return output
