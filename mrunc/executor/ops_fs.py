"""Filesystem ops: mounts, device nodes, symlinks, pivot_root, masked and read-only paths, sysctls, names.

Paths inside the rootfs are resolved with openat2(RESOLVE_IN_ROOT) and mounted through /proc/self/fd, so a
symlink in the rootfs (even one swapped in during setup) cannot send a mount outside it (CVE-2021-30465).
"""

import errno
import os
import stat

from mrunc.executor import libc
from mrunc.executor.flags import MOUNT_FLAGS, UMOUNT_FLAGS, mask
from mrunc.executor.optable import Context, op

# Flags a remount must carry over or the kernel refuses it in a user namespace (they are locked).
_STATVFS_KEPT = MOUNT_FLAGS["MS_NOSUID"] | MOUNT_FLAGS["MS_NODEV"] | MOUNT_FLAGS["MS_NOEXEC"]
_STATVFS_ATIME = {1024: "MS_NOATIME", 2048: "MS_NODIRATIME", 4096: "MS_RELATIME"}


def _open_root(root: str) -> int:
    return os.open(root, libc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _open_in_root(root: str, path: str, create: str | None = None) -> int:
    """O_PATH fd of `path` resolved inside `root`; with `create` ("dir" or "file") make what is missing."""
    root_fd = _open_root(root)
    try:
        try:
            return libc.open_in_root(root_fd, path)
        except FileNotFoundError:
            if not create:
                raise
        return libc.open_in_root(root_fd, _make_in_root(root_fd, path, create))
    finally:
        os.close(root_fd)


MAX_SYMLINKS = 40  # as the kernel's path walk


def _make_in_root(root_fd: int, path: str, create: str) -> str:
    """Make what is missing of `path` inside root and return where it led, as runc does: a symlink on the way,
    even a dangling one, is followed as if root were `/` (`..` stops there), and its missing target made.
    Each step is opened from root with RESOLVE_IN_ROOT, so nothing is made outside it."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []  # the resolved path so far: real directories under root
    links = 0
    while todo:
        name = todo.pop(0)
        if name in (".", ".."):
            if name == ".." and done:
                done.pop()
            continue
        parent = libc.open_in_root(root_fd, "/" + "/".join(done))
        try:
            target = _readlink_or_make(parent, name, "file" if not todo and create == "file" else "dir", path)
        finally:
            os.close(parent)
        if target is None:
            done.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return "/" + "/".join(done)


def _readlink_or_make(parent: int, name: str, kind: str, path: str) -> str | None:
    """The target if `name` is a symlink; None if it is anything else, or was missing and is now made."""
    try:
        if not stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            return None
        return os.readlink(name, dir_fd=parent)
    except FileNotFoundError:
        _create(parent, name, kind, path)
        return None


def _create(parent: int, name: str, kind: str, path: str) -> None:
    """Make a missing file or dir. Never through a symlink (O_EXCL and mkdir do not follow the last component):
    one swapped in since we looked is refused."""
    try:
        if kind == "file":
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=parent))
        else:
            os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        raise OSError(errno.EEXIST, f"{name!r} appeared while it was being made; not creating through it",
                      path) from None


def _parent_in_root(root: str, path: str) -> tuple[int, str]:
    """fd of the directory holding `path` inside root (created if missing), and the last name."""
    head, name = os.path.split(path.rstrip("/"))
    return _open_in_root(root, head or "/", create="dir"), name


def _open_ordinary_dir(root: str, path: str) -> int:
    """O_PATH fd of the directory `path` inside root, made if missing; refused if a symlink is on the way or it is
    not a directory (runc: 'must be mounted on ordinary directory', CVE-2023-28642)."""
    resolve = libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS
    root_fd = _open_root(root)
    try:
        try:
            try:
                fd = libc.openat2(root_fd, path, libc.O_PATH | os.O_CLOEXEC, resolve)
            except FileNotFoundError:
                _make_in_root(root_fd, path, "dir")
                fd = libc.openat2(root_fd, path, libc.O_PATH | os.O_CLOEXEC, resolve)  # and nothing swapped in
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, "a symlink in the rootfs on the way: it must be mounted on ordinary "
                                           "directory", path) from None
            raise
    finally:
        os.close(root_fd)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ENOTDIR, "not a directory in the rootfs: it must be mounted on ordinary directory", path)
    return fd


@op("mount", "init", "source", "target", "fstype", "flags", "data", "root", "create")
def mount(ctx: Context, source: str | None, target: str, fstype: str | None, flags: list[str],
          data: str | None, root: str | None, create: str | None) -> None:
    """mount(2); with `root`, target is a path inside root, resolved safely; `create`: dir, file or auto, or
    ordinary_dir (no symlink on the way, for /proc, /sys, /dev: CVE-2023-28642)."""
    value = mask(flags, MOUNT_FLAGS)
    if create == "auto":  # a bind mount point takes the kind of its source
        create = "dir" if os.path.isdir(source or "") else "file"
    if root is None:
        libc.mount(source, target, fstype, value, data)
        return
    fd = _open_ordinary_dir(root, target) if create == "ordinary_dir" else _open_in_root(root, target, create)
    try:
        libc.mount(source, f"/proc/self/fd/{fd}", fstype, value, data)
    finally:
        os.close(fd)


@op("mount_parent_private", "init", "path")
def mount_parent_private(ctx: Context, path: str) -> None:
    """Make the mount holding `path` private if it is shared (runc's rootfsParentMountPrivate): pivot_root refuses
    a new root whose parent mount is shared, and the rootfs bound onto itself would show up in the host's mounts."""
    point, shared = _mount_holding(os.path.realpath(path))
    if shared:
        libc.mount(None, point, None, MOUNT_FLAGS["MS_PRIVATE"], None)


def _mount_holding(path: str) -> tuple[str, bool]:
    """(mount point, is it shared?) of the deepest mount holding `path`, from /proc/self/mountinfo."""
    best, shared = "/", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):  # the later of two mounts on one point is the one on top
                best, shared = point, any(o.startswith("shared:") for o in fields[6:fields.index("-")])
    return best, shared


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in a path as \\ooo octal escapes."""
    parts = field.split("\\")
    return parts[0] + "".join(chr(int(p[:3], 8)) + p[3:] for p in parts[1:])


def _locked_flags(path: str) -> int:
    """The mount flags a remount of `path` must keep (nosuid, nodev, noexec and the atime mode)."""
    current = os.statvfs(path).f_flag
    kept = current & _STATVFS_KEPT
    for bit, name in _STATVFS_ATIME.items():
        if current & bit:
            kept |= MOUNT_FLAGS[name]
    return kept


@op("remount", "init", "target", "flags", "root")
def remount(ctx: Context, target: str, flags: list[str], root: str | None) -> None:
    """mount(MS_REMOUNT) keeping the flags the kernel locks (nosuid, nodev, noexec, atime) on the mount."""
    fd = _open_in_root(root, target) if root else os.open(target, libc.O_PATH | os.O_CLOEXEC)
    try:
        path = f"/proc/self/fd/{fd}"
        libc.mount(None, path, None, mask(flags, MOUNT_FLAGS) | _locked_flags(path), None)
    finally:
        os.close(fd)


@op("mknod", "init", "root", "path", "type", "major", "minor", "mode", "uid", "gid")
def mknod(ctx: Context, root: str, path: str, type: str, major: int, minor: int, mode: int,
          uid: int, gid: int) -> None:
    """Create a device node inside root, then chown and chmod it (mknod is subject to umask)."""
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[type]
    parent, name = _parent_in_root(root, path)
    try:
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        os.mknod(name, kind | (mode & 0o7777), os.makedev(major, minor), dir_fd=parent)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(name, mode & 0o7777, dir_fd=parent)
    finally:
        os.close(parent)


@op("symlink", "init", "root", "target", "link")
def symlink(ctx: Context, root: str, target: str, link: str) -> None:
    """Create a symlink inside root; an existing entry is left alone, as runc does."""
    parent, name = _parent_in_root(root, link)
    try:
        os.symlink(target, name, dir_fd=parent)
    except FileExistsError:
        pass
    finally:
        os.close(parent)


@op("mkdir_in_root", "init", "root", "path")
def mkdir_in_root(ctx: Context, root: str, path: str) -> None:
    """Create a directory and its missing parents inside root (mode 0755), resolved safely; existing is fine."""
    os.close(_open_in_root(root, path, create="dir"))


@op("pivot_root", "init", "root")
def pivot_root(ctx: Context, root: str) -> None:
    """pivot_root(".", "."), then make the old root a slave and detach it, so no host mount stays reachable."""
    new_root = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        libc.pivot_root(".", ".")
        os.fchdir(old_root)
        libc.mount(None, ".", None, mask(["MS_SLAVE", "MS_REC"], MOUNT_FLAGS), None)
        libc.umount2(".", UMOUNT_FLAGS["MNT_DETACH"])
        os.chdir("/")
    finally:
        os.close(new_root)
        os.close(old_root)


@op("chroot", "init", "root")
def chroot(ctx: Context, root: str) -> None:
    """chroot into root: in a mount namespace not the container's own, where pivot_root would move others' root."""
    os.chroot(root)
    os.chdir("/")


def _is_dev_null(fd: int) -> bool:
    st = os.fstat(fd)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def _open_named(path: str) -> int | None:
    """O_PATH fd of what `path` names inside the container's root, its symlinks followed there and never out of
    it (absolute targets and `..` stay in root, magic links are refused), as runc's mount(2) after pivot_root
    resolves it; None if it names nothing (a missing path or a dangling link: nothing to hide, as runc). The
    compiler put the resolution it saw in the plan: a different one now (the rootfs changed since) is refused."""
    try:
        fd = _open_in_root("/", path)
    except FileNotFoundError:
        return None
    try:
        named = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        named = "?"
    if named != clean_path(path):
        os.close(fd)
        raise OSError(errno.ESTALE, f"{path} names {named} now, not what the plan was compiled with; recompile",
                      path)
    return fd


def clean_path(path: str) -> str:
    """`path` without empty, `.` and `..` parts (as the kernel names a file it opened), resolved lexically: no
    symlink is followed. The compiler uses it too (lower_rootfs), from here: the executor may not import the
    compiler, and compile loads this module anyway."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            del parts[-1:]
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


@op("mask_path", "init", "path")
def mask_path(ctx: Context, path: str) -> None:
    """Hide what a path names in the root: /dev/null bound over a file, a read-only empty tmpfs over a directory.

    /dev/null is checked to be the real 1:3 character device first, so a rootfs that made it a symlink or
    another node cannot turn the mask into a bind of something else (CVE-2025-31133).
    """
    target = _open_named(path)
    if target is None:
        return
    try:
        proc_target = f"/proc/self/fd/{target}"
        if stat.S_ISDIR(os.fstat(target).st_mode):
            libc.mount("tmpfs", proc_target, "tmpfs", mask(["MS_RDONLY"], MOUNT_FLAGS), "size=0k")
            return
        null = os.open("/dev/null", libc.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if not _is_dev_null(null):
                raise OSError(1, "/dev/null is not the 1:3 character device; refusing to mask with it", path)
            libc.mount(f"/proc/self/fd/{null}", proc_target, None, MOUNT_FLAGS["MS_BIND"], None)
        finally:
            os.close(null)
    finally:
        os.close(target)


@op("readonly_path", "init", "path")
def readonly_path(ctx: Context, path: str) -> None:
    """Make what a path names in the root read-only: bind it onto itself, then remount the bind read-only."""
    fd = _open_named(path)
    if fd is None:
        return
    try:
        target = f"/proc/self/fd/{fd}"
        libc.mount(target, target, None, mask(["MS_BIND", "MS_REC"], MOUNT_FLAGS), None)
    finally:
        os.close(fd)
    remount(ctx, path, ["MS_BIND", "MS_REMOUNT", "MS_RDONLY", "MS_REC"], "/")


def write_proc(path: str, value: str) -> None:
    """Write /proc/PATH, failing closed unless /proc is the root of a procfs mount and PATH stays on it: a
    symlink at /proc or a mount over a part of it would redirect the write (CVE-2025-52881)."""
    proc = os.open("/proc", libc.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if libc.fstatfs_type(proc) != libc.PROC_SUPER_MAGIC or os.fstat(proc).st_ino != libc.PROC_ROOT_INO:
            raise OSError(errno.EXDEV, "/proc is not the root of a procfs mount; refusing to write there", path)
        resolve = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_XDEV | libc.RESOLVE_NO_MAGICLINKS
        fd = libc.openat2(proc, path, os.O_WRONLY | os.O_CLOEXEC, resolve)
    finally:
        os.close(proc)
    with open(fd, "w") as f:
        f.write(value)


@op("sysctl", "init", "key", "value")
def sysctl(ctx: Context, key: str, value: str) -> None:
    """Write /proc/sys/KEY (dots become slashes), only to the procfs file itself (write_proc)."""
    write_proc("sys/" + key.replace(".", "/"), value)


@op("sethostname", "init", "name")
def sethostname(ctx: Context, name: str) -> None:
    """sethostname(2) in the container's uts namespace."""
    libc.sethostname(name)


@op("setdomainname", "init", "name")
def setdomainname(ctx: Context, name: str) -> None:
    """setdomainname(2) in the container's uts namespace."""
    libc.setdomainname(name)
