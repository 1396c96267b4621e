"""Namespace ops: create, join, map ids, offset clocks.

Imports stay at the top, never inside an op: after fork the process may be a user namespace's root that
cannot read the host's stdlib (e.g. under /root), or may have pivoted away from it.
"""

import os
import sys

from mrunc.executor import libc
from mrunc.executor.flags import CLONE_FLAGS, NAMESPACE_FLAGS, mask
from mrunc.executor.optable import Context, op, protocol_op

protocol_op("fork", "runtime", "fork the child process; from here runtime and child take turns (run.py)")
protocol_op("fork_init", "child", "fork init, the container's pid 1; child reports its pid and exits")


@op("open_ns_files", "child", "paths")
def open_ns_files(ctx: Context, paths: list[str]) -> None:
    """open(2) every namespace file the setns ops that follow join, while still on the host: once in the
    container's user namespace /proc/PID/ns of its init may be denied, and once in its mount namespace
    /proc is the container's, where PID is no pid or another process."""
    ctx.ns_fds = {path: os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in paths}


@op("setns", "child", "type", "path")
def setns(ctx: Context, type: str, path: str) -> None:
    """Join an existing namespace by path (setns(2)), through the fd open_ns_files opened if it did."""
    fd = (ctx.ns_fds or {}).pop(path, None)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if fd is None else fd
    try:
        libc.setns(fd, CLONE_FLAGS[NAMESPACE_FLAGS[type]])
    finally:
        os.close(fd)


@op("unshare", "child init", "flags")
def unshare(ctx: Context, flags: list[str]) -> None:
    """Create new namespaces for this process (unshare(2)); a new pid/time namespace applies to its children."""
    libc.unshare(mask(flags, CLONE_FLAGS))


@op("write_id_map", "runtime", "file", "content")
def write_id_map(ctx: Context, file: str, content: str) -> None:
    """Write /proc/CHILD/{setgroups,uid_map,gid_map}: the parent maps ids while the child waits."""
    with open(f"/proc/{ctx.child_pid}/{file}", "w") as f:
        f.write(content)


@op("become_ns_root", "child")
def become_ns_root(ctx: Context) -> None:
    """setresgid/setresuid(0) in the new user namespace, so the rest of setup runs as its root."""
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


@op("set_time_offsets", "child", "content")
def set_time_offsets(ctx: Context, content: str) -> None:
    """Write /proc/self/timens_offsets; must happen before the first process enters the time namespace."""
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(content)


@op("loopback_up", "init")
def loopback_up(ctx: Context) -> None:
    """Bring `lo` up in a new network namespace (ioctl SIOCSIFFLAGS), as runc does for a new netns."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    s = libc.socket(libc.AF_INET, libc.SOCK_DGRAM)
    try:
        flags = int.from_bytes(libc.ioctl(s, siocgifflags, _ifreq(0))[16:18], sys.byteorder)
        libc.ioctl(s, siocsifflags, _ifreq(flags | iff_up))
    finally:
        os.close(s)


def _ifreq(flags: int) -> bytes:
    """struct ifreq for lo's flags: the name in 16 bytes, ifr_flags (a short), padding to 40 bytes."""
    return b"lo".ljust(16, b"\0") + flags.to_bytes(2, sys.byteorder) + bytes(22)
