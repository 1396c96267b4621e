"""libc's socket calls, which carry the sync channel between runtime, child and init (run.py)."""

import os
import signal
import threading

from mrunc.executor import libc


def test_socketpair_carries_lines_and_passed_fds_close_on_exec():
    ours, theirs = libc.socketpair()
    read_end, write_end = os.pipe()
    try:
        assert libc.sendmsg(ours, b"pty /dev/pts/3\n", [write_end]) == len(b"pty /dev/pts/3\n")
        data, fds = libc.recvmsg(theirs, 4096, max_fds=4)
        assert data == b"pty /dev/pts/3\n" and len(fds) == 1
        os.write(fds[0], b"x")  # the fd that came is the pipe's write end
        assert os.read(read_end, 1) == b"x"
        assert not os.get_inheritable(fds[0])
        os.close(fds[0])
        assert libc.sendmsg(ours, b"go 7\n", []) == 5
        assert libc.recvmsg(theirs, 4096, max_fds=4) == (b"go 7\n", [])
        os.close(ours)
        ours = -1
        assert libc.recvmsg(theirs, 4096, max_fds=4) == (b"", [])  # EOF
    finally:
        for fd in (ours, theirs, read_end, write_end):
            if fd >= 0:
                os.close(fd)


def test_recvmsg_interrupted_by_a_signal_runs_its_handler_and_goes_on_waiting():
    ours, theirs = libc.socketpair()
    seen = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(signum))
    sender = threading.Timer(0.3, lambda: libc.sendmsg(ours, b"pid 42\n", []))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # interrupts the blocked recvmsg (EINTR) before the send
        sender.start()
        assert libc.recvmsg(theirs, 4096, max_fds=4) == (b"pid 42\n", [])
        assert seen == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sender.join()
        os.close(ours)
        os.close(theirs)
