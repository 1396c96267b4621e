"""A container without a mount namespace of its own: it inherits the runtime's (config-linux.md: a type not listed
is inherited) or joins one by path. Its mounts are then made in a namespace that outlives it, all beneath a bind of
the rootfs onto itself, and undone at exit by detaching that one bind (MNT_DETACH takes every mount below it).
"""

import errno
import os

from mrunc.executor import libc
from mrunc.executor.flags import CLONE_FLAGS, UMOUNT_FLAGS
from mrunc.executor.optable import Context, op


@op("unmount_at_exit", "runtime", "root", "ns")
def unmount_at_exit(ctx: Context, root: str, ns: str | None) -> None:
    """At exit, detach the rootfs bind init makes in a mount namespace not the container's own (`ns`, or ours).

    Notes which mount is at `root` now, in that namespace, so only a mount init put over it is detached; a created
    container's is detached by `mrunc delete` instead."""
    before = in_mount_ns(ns, lambda: mount_id(root))
    ctx.undo.append((f"unmount {root}", lambda: in_mount_ns(ns, lambda: _detach_if_covered(root, before))))


def mount_id(path: str) -> int:
    """The id of the mount `path` resolves to (the topmost one there), from the kernel's fdinfo of an O_PATH fd."""
    fd = os.open(path, libc.O_PATH | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as info:
            return next(int(line.split()[1]) for line in info if line.startswith("mnt_id:"))
    finally:
        os.close(fd)


def _detach_if_covered(root: str, before: int) -> int:
    """A mount over the one that was at root before the container: ours (that one stayed mounted under it, so no
    new mount can have its id)."""
    if mount_id(root) != before:
        libc.umount2(root, UMOUNT_FLAGS["MNT_DETACH"])
    return 0


def detach_if_init_root(root: str, ns: str | None, init_root: int) -> None:
    """For `mrunc delete`: detach the mount at root if it is the one init took as its root (`create` noted its id,
    via /proc/PID/root). Run from another mount namespace, root shows another mount there, which stays."""
    def unmount() -> int:
        if mount_id(root) == init_root:
            libc.umount2(root, UMOUNT_FLAGS["MNT_DETACH"])
        return 0
    try:
        in_mount_ns(ns, unmount)
    except FileNotFoundError:
        pass  # the joined namespace is gone, and its mounts with it


def in_mount_ns(ns: str | None, action) -> int:
    """action() in the mount namespace `ns` (None: ours). In a forked child, which alone changes namespace; its
    result (an int) or its errno comes back over a pipe."""
    if ns is None:
        return action()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            fd = os.open(ns, os.O_RDONLY | os.O_CLOEXEC)
            libc.setns(fd, CLONE_FLAGS["CLONE_NEWNS"])
            reply = f"ok {action()}"
        except OSError as e:
            reply = f"err {e.errno or errno.EIO} {e.strerror or e}"
        except BaseException as e:  # never let a second interpreter escape a fork
            reply = f"err {errno.EIO} {type(e).__name__}: {e}"
        os.write(write_end, reply.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as replies:
        reply = replies.read().decode()
    os.waitpid(pid, 0)
    kind, _, rest = reply.partition(" ")
    if kind == "ok":
        return int(rest)
    number, _, text = rest.partition(" ")
    raise OSError(int(number or errno.EIO), f"in mount namespace {ns}: {text or 'the helper died'}")
