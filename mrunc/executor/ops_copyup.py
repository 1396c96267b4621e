"""tmpfs with tmpcopyup (podman asks for it on every tmpfs: --tmpfs, --mount type=tmpfs, --read-only's /run, /tmp,
/var/tmp): the directory's existing contents are copied into the new tmpfs, as runc copies them, keeping modes,
owners, times, symlinks, hard links, device nodes and extended attributes; the tmpfs root takes the directory's
own mode and owner.

The directory is opened before the tmpfs covers it: that fd still reads the covered directory, so no temporary
mount point is needed. Nothing is followed: each entry is read with O_NOFOLLOW from its parent's fd, inside root.
"""

import errno
import os
import stat

from mrunc.executor import libc
from mrunc.executor.flags import MOUNT_FLAGS, mask
from mrunc.executor.ops_fs import _open_in_root, _open_ordinary_dir
from mrunc.executor.optable import Context, op

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # an O_PATH fd as a readable one (its magic link is followed)


@op("tmpfs_copyup", "init", "source", "target", "flags", "data", "root", "create")
def tmpfs_copyup(ctx: Context, source: str, target: str, flags: list[str], data: str | None, root: str,
                 create: str) -> None:
    """mount(2) a tmpfs over a directory and copy in what the directory held (modes, owners, links kept).

    The directory is opened first; through that fd its contents are copied once the tmpfs covers it, then the tmpfs
    root is given the directory's mode, owner and times (as runc, only a directory that was there: one made for the
    mount leaves the tmpfs its own, e.g. its mode= option)."""
    existed = _exists(root, target)
    where = _open_ordinary_dir(root, target) if create == "ordinary_dir" else _open_in_root(root, target, create)
    try:
        covered = os.open(f"/proc/self/fd/{where}", _REOPEN)
        try:
            libc.mount(source, f"/proc/self/fd/{where}", "tmpfs", mask(flags, MOUNT_FLAGS), data)
        except OSError:
            os.close(covered)
            raise
    finally:
        os.close(where)
    try:
        top = _open_in_root(root, target)  # resolves to the tmpfs just mounted over the directory
        try:
            fresh = os.open(f"/proc/self/fd/{top}", _REOPEN)
        finally:
            os.close(top)
        try:
            _copy_dir(covered, fresh, "", {}, fresh)
            if existed:
                _copy_attributes(covered, fresh, os.fstat(covered))
        finally:
            os.close(fresh)
    finally:
        os.close(covered)


def _exists(root: str, target: str) -> bool:
    try:
        os.close(_open_in_root(root, target))
    except FileNotFoundError:
        return False
    return True


def _copy_dir(src: int, dst: int, path: str, linked: dict[tuple[int, int], str], top: int) -> None:
    """Copy the entries of directory fd `src` into `dst`, which is at `path` under the tmpfs root `top`. `linked`
    maps a multiply-linked file to where its first copy went (from `top`), so hard links stay links."""
    for name in os.listdir(src):
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        here = f"{path}/{name}" if path else name
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            inner_src = os.open(name, _DIR, dir_fd=src)
            try:
                inner_dst = os.open(name, _DIR, dir_fd=dst)
                try:
                    _copy_dir(inner_src, inner_dst, here, linked, top)
                    _copy_attributes(inner_src, inner_dst, os.fstat(inner_src))
                finally:
                    os.close(inner_dst)
            finally:
                os.close(inner_src)
        elif st.st_nlink > 1 and not stat.S_ISLNK(mode) and (st.st_dev, st.st_ino) in linked:
            os.link(linked[st.st_dev, st.st_ino], name, src_dir_fd=top, dst_dir_fd=dst, follow_symlinks=False)
        elif stat.S_ISREG(mode):
            _copy_file(src, dst, name)
            if st.st_nlink > 1:
                linked[st.st_dev, st.st_ino] = here
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
        else:  # device node, fifo, socket
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
            if st.st_nlink > 1:
                linked[st.st_dev, st.st_ino] = here


def _copy_file(src: int, dst: int, name: str) -> None:
    """A regular file's bytes, then its attributes. O_NONBLOCK: a fifo swapped in since the stat cannot hang us."""
    inp = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src)
    try:
        st = os.fstat(inp)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EAGAIN, "changed while it was being copied", name)
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst)
        try:
            while os.sendfile(out, inp, None, 1 << 20):
                pass
            _copy_attributes(inp, out, st)
        finally:
            os.close(out)
    finally:
        os.close(inp)


def _copy_attributes(src: int, dst: int, st: os.stat_result) -> None:
    """Extended attributes, owner, then mode (chown clears set-id bits), then times (last: the rest changes them)."""
    try:
        for key in os.listxattr(src):
            try:
                os.setxattr(dst, key, os.getxattr(src, key))
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EPERM):
                    raise
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:
            raise
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
