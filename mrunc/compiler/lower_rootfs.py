"""The container's filesystem: rootfs, mounts in listed order, /dev, masked and read-only paths.

Mount options are lowered by table, as runc does: each option either sets or clears a flag, is a
propagation change (its own mount call), or is passed to the filesystem as data.
"""

import os

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError, pointer
from mrunc.executor.ops_fs import clean_path

TYPE_CHECKING = False  # collections.abc imports collections (~1 ms of every compile) for a name only checkers read
if TYPE_CHECKING:
    from collections.abc import Callable

# option -> (flag, set?)
FLAG_OPTIONS = {
    "defaults": (None, True),
    "ro": ("MS_RDONLY", True), "rw": ("MS_RDONLY", False),
    "nosuid": ("MS_NOSUID", True), "suid": ("MS_NOSUID", False),
    "nodev": ("MS_NODEV", True), "dev": ("MS_NODEV", False),
    "noexec": ("MS_NOEXEC", True), "exec": ("MS_NOEXEC", False),
    "sync": ("MS_SYNCHRONOUS", True), "async": ("MS_SYNCHRONOUS", False),
    "dirsync": ("MS_DIRSYNC", True),
    "remount": ("MS_REMOUNT", True),
    "mand": ("MS_MANDLOCK", True), "nomand": ("MS_MANDLOCK", False),
    "noatime": ("MS_NOATIME", True), "atime": ("MS_NOATIME", False),
    "nodiratime": ("MS_NODIRATIME", True), "diratime": ("MS_NODIRATIME", False),
    "relatime": ("MS_RELATIME", True), "norelatime": ("MS_RELATIME", False),
    "strictatime": ("MS_STRICTATIME", True), "nostrictatime": ("MS_STRICTATIME", False),
    "lazytime": ("MS_LAZYTIME", True), "nolazytime": ("MS_LAZYTIME", False),
    "nosymfollow": ("MS_NOSYMFOLLOW", True), "symfollow": ("MS_NOSYMFOLLOW", False),
}
BIND_OPTIONS = {"bind": ["MS_BIND"], "rbind": ["MS_BIND", "MS_REC"]}
PROPAGATION_OPTIONS = {
    "private": ["MS_PRIVATE"], "rprivate": ["MS_PRIVATE", "MS_REC"],
    "shared": ["MS_SHARED"], "rshared": ["MS_SHARED", "MS_REC"],
    "slave": ["MS_SLAVE"], "rslave": ["MS_SLAVE", "MS_REC"],
    "unbindable": ["MS_UNBINDABLE"], "runbindable": ["MS_UNBINDABLE", "MS_REC"],
}
# Options that ask the runtime for more than mount(2): tmpcopyup (a tmpfs gets the directory's contents, as runc
# does: the tmpfs_copyup op); runc ignores it on other filesystems, and so does mrunc (with a note).
EXTENSION_OPTIONS = {"tmpcopyup"}
UNSUPPORTED_OPTIONS = {"idmap", "ridmap", "copy-symlink", "src-nofollow", "dst-nofollow"}
# linux.rootfsPropagation -> what / becomes before the rootfs is bound (every mount of the new namespace), and what
# the rootfs mount becomes once pivot_root made it / (config-linux.md: it "sets the rootfs's mount propagation").
# shared and unbindable wait for pivot_root: pivot_root refuses a shared new root or parent (EINVAL), and an
# unbindable tree cannot be bound onto itself. Until then / stays private, so the container's mounts stay off the
# host's peer groups: "shared" is a new peer group, "not shared with the host" (config-linux.md).
# The r-forms are runc's (Docker writes rslave/rshared when a bind asks for propagation, test tools rprivate): rshared
# keeps every mount of the namespace in the host's peer groups, so a bind with rshared (or rslave) from a shared host
# path propagates both ways (or host to container), as under runc; mount_parent_private then keeps the rootfs bind
# off the host and pivot_root working, and after pivot_root the whole tree is made shared (runc 1.2 does the same).
ROOT_PROPAGATION = {"": ["MS_PRIVATE", "MS_REC"], "private": ["MS_PRIVATE", "MS_REC"],
                    "slave": ["MS_SLAVE", "MS_REC"], "shared": ["MS_PRIVATE", "MS_REC"],
                    "unbindable": ["MS_PRIVATE", "MS_REC"], "rprivate": ["MS_PRIVATE", "MS_REC"],
                    "rslave": ["MS_SLAVE", "MS_REC"], "rshared": ["MS_SHARED", "MS_REC"],
                    "runbindable": ["MS_PRIVATE", "MS_REC"]}
ROOTFS_PROPAGATION_AFTER_PIVOT = {"shared": ["MS_SHARED"], "unbindable": ["MS_UNBINDABLE"],
                                  "rshared": ["MS_SHARED", "MS_REC"],
                                  # not MS_REC: the read-only and masked paths are binds, refused below an unbindable
                                  # mount (EINVAL; runc 1.1's runbindable fails at the rootfs bind)
                                  "runbindable": ["MS_UNBINDABLE"]}

# Filesystems made for the container get linux.mountLabel as an SELinux context= option, as runc does; these keep
# the labels their kernel code gives them (runc labels mqueue's files only where SELinux is on).
UNLABELLED_TYPES = {"proc", "sysfs", "mqueue"}

# Nodes every container gets (runc's and crun's defaults), and the /dev symlinks.
DEFAULT_DEVICES = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/tty", 5, 0),
                   ("/dev/urandom", 1, 9), ("/dev/random", 1, 8))
DEV_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx"))


def parse_options(options: list[str], where: str) -> tuple[list[str], list[str], list[list[str]], list[str]]:
    """-> (flags to set, bind flags, propagation changes, filesystem data)."""
    flags: set[str] = set()
    bind: list[str] = []
    propagation: list[list[str]] = []
    data: list[str] = []
    for i, option in enumerate(options):
        if option in FLAG_OPTIONS:
            flag, on = FLAG_OPTIONS[option]
            if flag and on:
                flags.add(flag)
            elif flag:
                flags.discard(flag)
        elif option in BIND_OPTIONS:
            bind = BIND_OPTIONS[option]
        elif option in PROPAGATION_OPTIONS:
            propagation.append(PROPAGATION_OPTIONS[option])
        elif option in EXTENSION_OPTIONS:
            continue  # lower_mounts looks for them
        elif option in UNSUPPORTED_OPTIONS:
            raise ConfigError(f"{where}/options/{i}", f"mount option {option!r} is not supported by mrunc")
        else:
            data.append(option)
    return sorted(flags), bind, propagation, data


def lower_root(emit: Emitter, rootfs: str, propagation: str, own_mount_ns: bool) -> None:
    """In the container's own mount namespace, make / private (or as rootfsPropagation says) so nothing we mount
    leaks to the host. Then bind the rootfs onto itself: pivot_root needs the new root to be a mount point, and in
    a namespace not the container's its mounts hang from that one bind."""
    if own_mount_ns:
        flags = ROOT_PROPAGATION[propagation]
        emit("mount", "init", "/linux/rootfsPropagation", source=None, target="/", fstype=None,
             flags=flags, data=None, root=None, create=None)
        if "MS_SHARED" in flags:  # pivot_root refuses a shared parent, and the bind below would reach the host
            emit("mount_parent_private", "init", "/linux/rootfsPropagation", path=rootfs)
    emit("mount", "init", "/root/path", source=rootfs, target=rootfs, fstype=None, flags=["MS_BIND", "MS_REC"],
         data=None, root=None, create=None)


def lower_rootfs_propagation(emit: Emitter, propagation: str) -> None:
    """After pivot_root (or chroot): the rootfs mount (now /) shared or unbindable, as rootfsPropagation says."""
    if propagation in ROOTFS_PROPAGATION_AFTER_PIVOT:
        emit("mount", "init", "/linux/rootfsPropagation", source=None, target="/", fstype=None,
             flags=ROOTFS_PROPAGATION_AFTER_PIVOT[propagation], data=None, root=None, create=None)


def lower_mounts(emit: Emitter, config: dict, rootfs: str, bundle: str, cgroup_dirs: dict[str, str],
                 before_governed: "Callable[[], None]") -> None:
    """Every mount in listed order (config.md: 'MUST mount entries in the listed order'). `before_governed` is
    called before a mount that depends on init's cgroup: a cgroup2 mount in a new cgroup namespace, or one from a
    device. Binds, pseudo filesystems (proc, tmpfs, ...) and v1's cgroup binds may come before the join."""
    label = config.get("linux", {}).get("mountLabel")
    mounted: list[str] = []  # destinations so far: what lies below them is not the rootfs's
    for i, m in enumerate(config.get("mounts", [])):
        where = pointer("mounts", i)
        flags, bind, propagation, data = parse_options(m.get("options", []), where)
        kind = m.get("type") or ("bind" if bind else "")
        if on_kernel_dir(m["destination"], kind):
            check_ordinary_dir(rootfs, m["destination"], kind, mounted, where)
        mounted.append(clean_path(m["destination"]))
        if kind == "bind" and not bind:
            bind = ["MS_BIND"]
        if kind in ("cgroup", "cgroup2"):
            namespaces = config.get("linux", {}).get("namespaces", [])
            cgroupns = any(ns["type"] == "cgroup" and not ns.get("path") for ns in namespaces)
            if "" in cgroup_dirs and cgroupns:  # a cgroup2 mount, showing the cgroup namespace init makes on joining
                before_governed()
            _lower_cgroup_mount(emit, m["destination"], flags, rootfs, cgroup_dirs, cgroupns, where)
        elif bind:
            source = m.get("source", "")
            if not source:
                raise ConfigError(where + "/source", "a bind mount needs a source path")
            if not source.startswith("/"):
                source = f"{bundle}/{source}"
            _bind(emit, source, m["destination"], bind, flags, rootfs, where, create=None)
        else:
            if not kind:
                raise ConfigError(where + "/type", "missing; allowed: a filesystem type, or a bind option")
            if label and kind not in UNLABELLED_TYPES:
                data.append(f'context="{label}"')
            if m.get("source", "").startswith("/"):  # a device (or image): the devices controller checks its open
                before_governed()
            _lower_fs_mount(emit, m, kind, flags, data, rootfs, where)
        if "tmpcopyup" in m.get("options", []) and kind != "tmpfs":
            emit.note(where + "/options", f"tmpcopyup is for tmpfs; ignored on {kind or 'a bind'} (as runc ignores it)")
        for change in propagation:
            emit("mount", "init", where, source=None, target=m["destination"], fstype=None, flags=change,
                 data=None, root=rootfs, create=None)


def _lower_fs_mount(emit: Emitter, m: dict, kind: str, flags: list[str], data: list[str], rootfs: str,
                    where: str) -> None:
    """A filesystem mount (not a bind). With tmpcopyup, a tmpfs_copyup op: the tmpfs goes on read-write, takes the
    directory's contents, then turns read-only if asked (runc mounts a tmpfs read-write and remounts it later)."""
    source, target = m.get("source") or kind, m["destination"]
    create = "ordinary_dir" if on_kernel_dir(target, kind) else "dir"
    if kind == "tmpfs" and "tmpcopyup" in m.get("options", []):
        emit("tmpfs_copyup", "init", where, source=source, target=target, flags=[f for f in flags if f != "MS_RDONLY"],
             data=",".join(data) or None, root=rootfs, create=create)
        if "MS_RDONLY" in flags:
            emit("remount", "init", where, target=target, flags=["MS_REMOUNT", *flags], root=rootfs)
        return
    emit("mount", "init", where, source=source, target=target, fstype=kind, flags=flags, data=",".join(data) or None,
         root=rootfs, create=create)


# Where the kernel's interfaces live: a filesystem mounted there (and procfs or sysfs anywhere) goes on an ordinary
# directory of the rootfs, never through a symlink. A rootfs whose /proc is a link to /tmp/x would have procfs
# mounted at /tmp/x, where an LSM profile that guards /proc/** does not look (CVE-2023-28642).
KERNEL_DIRS = ("/proc", "/sys", "/dev")
KERNEL_FILESYSTEMS = ("proc", "sysfs")


def on_kernel_dir(destination: str, kind: str) -> bool:
    path = clean_path(destination)
    return kind in KERNEL_FILESYSTEMS or any(path == d or path.startswith(d + "/") for d in KERNEL_DIRS)


def check_ordinary_dir(rootfs: str, destination: str, kind: str, mounted: list[str], where: str) -> None:
    """Refuse, before anything is made, a destination that goes through a symlink (or a file) in the rootfs, as
    runc refuses it ('must be mounted on ordinary directory'). What lies under an earlier mount is that filesystem's,
    not yet there: init checks it when it mounts (ops_fs, create=ordinary_dir), and checks the rest again."""
    parts = [p for p in clean_path(destination).split("/") if p]
    for n in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:n])
        if any(prefix == d or prefix.startswith(d.rstrip("/") + "/") for d in mounted):
            return
        path = os.path.join(rootfs, *parts[:n])
        try:
            is_link, is_dir = os.path.islink(path), os.path.isdir(path)
            exists = os.path.lexists(path)
        except OSError:
            return
        if not exists:
            return  # made as a directory when mounted
        if is_link or not is_dir:
            what = f"a symlink in the rootfs (to {os.readlink(path)!r})" if is_link else "not a directory in the rootfs"
            raise ConfigError(where + "/destination",
                              f"{destination}: {prefix} is {what}: filesystem {kind!r} must be mounted on ordinary "
                              f"directory (CVE-2023-28642); allowed: a real directory there, or none (it is made)")


def _bind(emit: Emitter, source: str, target: str, bind: list[str], flags: list[str], rootfs: str,
          where: str, create: str | None) -> None:
    """A bind mount ignores other flags, so ro/nosuid/... take a second, remounting call."""
    emit("mount", "init", where, source=source, target=target, fstype=None, flags=bind, data=None,
         root=rootfs, create=create or "auto")
    if flags:
        emit("remount", "init", where, target=target, flags=["MS_BIND", "MS_REMOUNT", *flags], root=rootfs)


def _lower_cgroup_mount(emit: Emitter, dest: str, flags: list[str], rootfs: str, cgroup_dirs: dict[str, str],
                        cgroupns: bool, where: str) -> None:
    """Show the container its own cgroup: on v1 a tmpfs with a bind of each controller's container
    directory (as runc does). On v2 a cgroup2 mount, which a new cgroup namespace roots at the container's
    cgroup; without one it would show the host's whole tree, so then a bind of the container's directory
    (the view crun gives)."""
    if "" in cgroup_dirs and cgroupns:
        emit("mount", "init", where, source="cgroup2", target=dest, fstype="cgroup2", flags=flags, data=None,
             root=rootfs, create="dir")
        return
    if "" in cgroup_dirs:
        _bind(emit, cgroup_dirs[""], dest, ["MS_BIND", "MS_REC"], flags, rootfs, where, create="dir")
        return
    tmpfs_flags = sorted(set(flags) - {"MS_RDONLY"})
    emit("mount", "init", where, source="tmpfs", target=dest, fstype="tmpfs", flags=tmpfs_flags,
         data="mode=755", root=rootfs, create="dir")
    for ctrl, d in cgroup_dirs.items():
        _bind(emit, d, f"{dest}/{ctrl}", ["MS_BIND", "MS_REC"], flags, rootfs, where, create="dir")
    if "MS_RDONLY" in flags:
        emit("remount", "init", where, target=dest, flags=["MS_REMOUNT", *flags], root=rootfs)


def lower_devices(emit: Emitter, linux: dict, rootfs: str, in_userns: bool) -> None:
    """Default nodes, linux.devices, /dev symlinks. In a user namespace mknod is not allowed, so host
    nodes are bind-mounted onto empty files instead (as runc does)."""
    nodes = [(path, "c", major, minor, 0o666, 0, 0, "/linux/devices") for path, major, minor in DEFAULT_DEVICES]
    listed = {d["path"] for d in linux.get("devices", [])}
    nodes = [n for n in nodes if n[0] not in listed]
    for i, d in enumerate(linux.get("devices", [])):
        src = pointer("linux", "devices", i)
        nodes.append((d["path"], d["type"], d.get("major", 0), d.get("minor", 0), _permissions(d, src),
                      d.get("uid", 0), d.get("gid", 0), src))
    for path, kind, major, minor, mode, uid, gid, src in nodes:
        if in_userns:
            _bind(emit, path, path, ["MS_BIND"], [], rootfs, src, create="file")
        else:
            emit("mknod", "init", src, root=rootfs, path=path, type=kind, major=major, minor=minor, mode=mode,
                 uid=uid, gid=gid)
    for target, link in DEV_SYMLINKS:
        emit("symlink", "init", "/linux/devices", root=rootfs, target=target, link=link)


# st_mode's file type bits for each device type; podman (--privileged, --device) sends fileMode with them set, as
# Go's os.FileMode of the host's node (8576 = 0o20600, a character device), and runc takes that.
DEVICE_FILE_TYPES = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}


def _permissions(device: dict, src: str) -> int:
    """The node's permission bits: fileMode without the file type bits, which must then name the device's type."""
    mode = device.get("fileMode", 0o666)
    file_type = mode & 0o170000
    if file_type and file_type != DEVICE_FILE_TYPES[device["type"]]:
        own = DEVICE_FILE_TYPES[device["type"]]
        raise ConfigError(f"{src}/fileMode", f"its file type bits ({file_type:#o}) are not those of type "
                          f"{device['type']!r} ({own:#o}); allowed: permission bits, with or without the type's own")
    return mode & 0o7777


def lower_paths(emit: Emitter, linux: dict, rootfs: str) -> None:
    """Read-only paths, then masked paths (after pivot_root, as runc and youki do). A path that goes through a
    symlink in the rootfs is lowered to what the link names there (resolved as if rootfs were `/`), so the
    listing shows what is hidden: init re-resolves it inside the root and refuses a different answer."""
    for key, op in (("readonlyPaths", "readonly_path"), ("maskedPaths", "mask_path")):
        for i, path in enumerate(linux.get(key, [])):
            src = pointer("linux", key, i)
            named = resolve_in_rootfs(rootfs, path, src)
            if named != path and named != clean_path(path):
                emit.note(src, f"{path} goes through a symlink in the rootfs: {op} of what it names, {named}")
                path = named
            emit(op, "init", src, path=path)
    if linux.get("mountLabel") and linux.get("maskedPaths"):
        emit.note("/linux/mountLabel", "not given to the empty tmpfs over a masked directory (runc labels it)")


MAX_SYMLINKS = 40  # as the kernel's path walk


def resolve_in_rootfs(rootfs: str, path: str, src: str) -> str:
    """What `path` names inside the rootfs as it is now: each symlink on the way followed as if rootfs were `/`
    (an absolute target starts over at rootfs, `..` stops there), so the answer never leaves the rootfs. From a
    missing part on (a mount point filled later, a dangling link) the rest is taken as written."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":
            del done[-1:]
        if name in (".", ".."):
            continue
        try:
            target = os.readlink(os.path.join(rootfs, *done, name))
        except OSError:  # not a symlink, or missing: a real part of the path
            done.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise ConfigError(src, f"{path}: too many levels of symbolic links in the rootfs; allowed: "
                                   f"{MAX_SYMLINKS}")
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return "/" + "/".join(done)


def lower_cwd(emit: Emitter, process: dict, rootfs: str) -> None:
    """A missing cwd is created, as runc does: after the mounts (it may lie on one), before the root turns
    read-only."""
    cwd = process.get("cwd", "/")
    if cwd.strip("/"):
        emit("mkdir_in_root", "init", "/process/cwd", root=rootfs, path=cwd)
