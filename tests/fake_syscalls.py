"""A recording fake of the syscall layer: ops run against it touch nothing on the host and leave, in order,
the syscalls they would have made, strace-style, with flags by name.

It replaces, in the op modules only, `libc` (the ctypes wrappers), `os` and `open`. Calls that
change state are recorded; lookups (open, openat2, dup, close, fstat, statvfs) are not, but the fds they
return are shown by the path they were opened for: `mount("proc", fd:/b/rootfs/proc, ...)`. The fake world
is a set of existing paths (`files`, `dirs`, `devices`); opening anything else is ENOENT, and what an op
creates (mkdir, creat, mknod) exists from then on. A call the fake does not know, or an op from another
module (cgroup, tty) or one that imports its own syscall modules (loopback_up), fails the test rather than
reaching the host.
"""

import _signal
import errno
import os
import posixpath
import stat
from types import SimpleNamespace

from mrunc.executor import libc, ops_fs, ops_lifecycle, ops_ns, ops_process
from mrunc.executor.flags import CAPABILITIES, CLONE_FLAGS, MOUNT_FLAGS, RLIMITS, UMOUNT_FLAGS
from mrunc.executor.ops import OPS, Context

PATCHED_MODULES = (ops_fs, ops_lifecycle, ops_ns, ops_process)
SIGNAL_NAMES = {_signal.SIGPIPE: "SIGPIPE", _signal.SIGXFSZ: "SIGXFSZ", _signal.SIG_DFL: "SIG_DFL"}
NOT_FAKED = {"loopback_up"}  # opens a socket (libc.socket) for its ioctls, which the fake does not cover
PURE_OS = {"makedev", "major", "minor", "fspath", "fsencode", "fsdecode", "strerror", "environ", "sep"}
PRCTL = {v: k for k, v in vars(libc).items() if k.startswith(("PR_SET", "PR_CAPBSET")) or k == "PR_CAP_AMBIENT"}
AMBIENT = {libc.PR_CAP_AMBIENT_RAISE: "PR_CAP_AMBIENT_RAISE", libc.PR_CAP_AMBIENT_CLEAR_ALL: "PR_CAP_AMBIENT_CLEAR_ALL"}
CAP_NAMES = {v: k for k, v in CAPABILITIES.items()}
RLIMIT_NAMES = {v: k for k, v in RLIMITS.items()}


def flag_names(value: int, table: dict[str, int]) -> str:
    """`MS_BIND|MS_REC`, in the table's order; 0 is `0`."""
    names = [name for name, bit in table.items() if value & bit]
    rest = value & ~sum(table[n] for n in names)
    return "|".join(names + ([hex(rest)] if rest else [])) or "0"


def cap_names(bits: int) -> str:
    return "|".join(CAP_NAMES[i] for i in sorted(CAP_NAMES) if bits >> i & 1) or "0"


class FakeSyscalls:
    def __init__(self, files=(), dirs=(), devices: dict[str, tuple[int, int]] | None = None,
                 cap_last_cap: int = 40) -> None:
        self.calls: list[str] = []
        self.dirs = set(dirs) | {"/"}
        self.files = set(files)
        self.devices = dict(devices or {})  # path -> (major, minor) of a character device
        self.cap_last_cap = cap_last_cap
        self._fds: dict[int, str] = {}
        self._next_fd = 10
        self.libc = _Strict("libc", libc, self._libc_calls())
        self.os = _Strict("os", os, self._os_calls(), pure=PURE_OS)
        self._signal = _Strict("_signal", _signal, {"signal": lambda sig, handler: self._record(
            "signal", SIGNAL_NAMES[sig], SIGNAL_NAMES[handler])})

    # --- bookkeeping ---
    def _record(self, name: str, *args: object) -> None:
        self.calls.append(f"{name}({', '.join(self._show(a) for a in args)})")

    def _show(self, value: object) -> str:
        if isinstance(value, str) and value.startswith("/proc/self/fd/") and self._fd_of(value) in self._fds:
            return f"fd:{self._fds[self._fd_of(value)]}"
        return repr(value) if isinstance(value, str) else str(value)

    @staticmethod
    def _fd_of(path: str) -> int:
        tail = path.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else -1

    def _exists(self, path: str) -> bool:
        return path in self.dirs or path in self.files or path in self.devices

    def _new_fd(self, path: str) -> int:
        fd, self._next_fd = self._next_fd, self._next_fd + 1
        self._fds[fd] = path
        return fd

    def _resolve(self, path: str, dir_fd: int | None = None) -> str:
        if path.startswith("/proc/self/fd/") and self._fd_of(path) in self._fds:
            return self._fds[self._fd_of(path)]
        base = self._fds[dir_fd] if dir_fd is not None else "/"
        return posixpath.normpath(posixpath.join(base, path))

    def _open_existing(self, path: str) -> int:
        if not self._exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return self._new_fd(path)

    # --- libc ---
    def _libc_calls(self) -> dict:
        r = self._record
        return {
            "mount": lambda src, target, fstype, flags, data: r("mount", src, target, fstype,
                                                                 flag_names(flags, MOUNT_FLAGS), data),
            "umount2": lambda target, flags: r("umount2", target, flag_names(flags, UMOUNT_FLAGS)),
            "pivot_root": lambda new, old: r("pivot_root", new, old),
            "unshare": lambda flags: r("unshare", flag_names(flags, CLONE_FLAGS)),
            "setns": lambda fd, nstype: r("setns", f"fd:{self._fds[fd]}", flag_names(nstype, CLONE_FLAGS)),
            "sethostname": lambda name: r("sethostname", name),
            "setdomainname": lambda name: r("setdomainname", name),
            "prctl": self._prctl,
            "capset": lambda e, p, i: r("capset", f"eff={cap_names(e)}", f"prm={cap_names(p)}", f"inh={cap_names(i)}"),
            "seccomp_set_filter": lambda bpf, flags: r("seccomp", "SECCOMP_SET_MODE_FILTER", flags,
                                                       f"<{len(bpf) // 8} insns>"),
            # RESOLVE_IN_ROOT: an absolute path is still inside root_fd
            "open_in_root": lambda fd, path, flags=0: self._open_existing(self._resolve(path.lstrip("/"), fd)),
            "close_range": lambda first, last, flags: r("close_range", first, hex(last), flags),
            "openat2": lambda fd, path, flags=0, resolve=0: self._open_existing(
                self._resolve(path.lstrip("/") if resolve & libc.RESOLVE_IN_ROOT else path, fd)),
            "setrlimit": lambda kind, soft, hard: r("setrlimit", RLIMIT_NAMES[kind], soft, hard),
            "fstatfs_type": lambda fd: libc.PROC_SUPER_MAGIC if self._fds[fd].startswith("/proc") else 0,
        }

    def _prctl(self, option: int, arg2: int = 0, *rest: int) -> int:
        if option == libc.PR_CAPBSET_DROP and arg2 > self.cap_last_cap:  # as the kernel answers
            self._record("prctl", "PR_CAPBSET_DROP", arg2)
            self.calls[-1] += " = EINVAL"
            raise OSError(errno.EINVAL, "Invalid argument")
        if option == libc.PR_CAPBSET_DROP:
            self._record("prctl", "PR_CAPBSET_DROP", CAP_NAMES[arg2])
        elif option == libc.PR_CAP_AMBIENT:
            self._record("prctl", "PR_CAP_AMBIENT", AMBIENT[arg2], *(CAP_NAMES[c] for c in rest[:1]))
        else:
            self._record("prctl", PRCTL[option], arg2)
        return 0

    # --- os ---
    def _os_calls(self) -> dict:
        r = self._record
        return {
            "open": self._os_open, "close": lambda fd: None, "dup": lambda fd: self._new_fd(self._fds[fd]),
            "fstat": self._fstat, "stat": self._stat, "statvfs": lambda path: SimpleNamespace(f_flag=0),
            "mkdir": lambda name, mode=0o777, dir_fd=None: self._create(self.dirs, "mkdir", name, dir_fd, oct(mode)),
            "unlink": self._unlink,
            "mknod": self._mknod,
            "chown": lambda name, uid, gid, dir_fd=None, follow_symlinks=True: r(
                "fchownat", self._resolve(name, dir_fd), uid, gid, "0" if follow_symlinks else "AT_SYMLINK_NOFOLLOW"),
            "chmod": lambda name, mode, dir_fd=None: r("chmod", self._resolve(name, dir_fd), oct(mode)),
            "symlink": lambda target, name, dir_fd=None: self._create(self.files, "symlink", name, dir_fd, target),
            "chdir": lambda path: r("chdir", path), "fchdir": lambda fd: r("fchdir", f"fd:{self._fds[fd]}"),
            "chroot": lambda path: r("chroot", path),
            "setgroups": lambda groups: r("setgroups", groups),
            "setresgid": lambda *ids: r("setresgid", *ids), "setresuid": lambda *ids: r("setresuid", *ids),
            "umask": lambda mask: r("umask", oct(mask)),
            "execve": lambda path, args, env: r("execve", path, args, sorted(f"{k}={v}" for k, v in env.items())),
            "access": lambda path, mode: self._exists(path),
            "readlink": lambda path, dir_fd=None: self._resolve(path, dir_fd),  # an fd's: the path it was opened at
            "path": SimpleNamespace(isdir=lambda p: p in self.dirs, isfile=lambda p: p in self.files,
                                    join=posixpath.join, split=posixpath.split, dirname=posixpath.dirname),
        }

    def _os_open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        full = self._resolve(path, dir_fd)
        if flags & os.O_CREAT and not self._exists(full):
            self._record("creat", full, oct(mode))
            self.files.add(full)
        return self._open_existing(full)

    def _fstat(self, fd: int) -> SimpleNamespace:
        path = self._fds[fd]
        if path in self.devices:
            return SimpleNamespace(st_mode=stat.S_IFCHR | 0o666, st_rdev=os.makedev(*self.devices[path]), st_ino=2,
                                   st_dev=1)
        kind = stat.S_IFDIR if path in self.dirs else stat.S_IFREG
        return SimpleNamespace(st_mode=kind | 0o644, st_rdev=0, st_ino=libc.PROC_ROOT_INO if path == "/proc" else 2,
                               st_dev=1)

    def _stat(self, name: str, *, dir_fd: int | None = None, follow_symlinks: bool = True) -> SimpleNamespace:
        """fstatat(2); the fake world has no symlinks, so following them or not is the same."""
        fd = self._open_existing(self._resolve(name, dir_fd))
        return self._fstat(fd)

    def _create(self, kind: set, name: str, path: str, dir_fd: int | None, detail: str) -> None:
        """mkdir(path, mode) or symlink(target, path): EEXIST if something is there already."""
        full = self._resolve(path, dir_fd)
        if self._exists(full):
            raise FileExistsError(errno.EEXIST, "File exists", full)
        if name == "symlink":
            self._record(name, detail, full)
        else:
            self._record(name, full, detail)
        kind.add(full)

    def _unlink(self, name: str, dir_fd: int | None = None) -> None:
        full = self._resolve(name, dir_fd)
        if not self._exists(full):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", full)
        self._record("unlink", full)
        self.files.discard(full)
        self.devices.pop(full, None)

    def _mknod(self, name: str, mode: int, device: int, dir_fd: int | None = None) -> None:
        full = self._resolve(name, dir_fd)
        kind = {stat.S_IFCHR: "S_IFCHR", stat.S_IFBLK: "S_IFBLK", stat.S_IFIFO: "S_IFIFO"}[stat.S_IFMT(mode)]
        self._record("mknod", full, f"{kind}|{oct(stat.S_IMODE(mode))}", f"{os.major(device)}:{os.minor(device)}")
        self.devices[full] = (os.major(device), os.minor(device))

    # --- open() ---
    def open(self, file: str | int, mode: str = "r", *args, **kwargs) -> "_FakeFile":
        """open() of a path, or of an fd an earlier (fake) openat2 returned."""
        return _FakeFile(self, self._fds[file] if isinstance(file, int) else file, mode)

    # --- running ops ---
    def install(self, monkeypatch) -> None:
        for module in PATCHED_MODULES:
            for name in ("libc", "os", "_signal"):
                if hasattr(module, name):
                    monkeypatch.setattr(module, name, getattr(self, name))
            monkeypatch.setattr(module, "open", self.open, raising=False)

    def run(self, ops: list[dict]) -> list[str]:
        """Run the ops, as their process would, against the fake; return the syscalls recorded."""
        ctx = Context()
        for o in ops:
            func = OPS[o["op"]].run
            if o["op"] in NOT_FAKED or func is None or func.__module__ not in {m.__name__ for m in PATCHED_MODULES}:
                raise AssertionError(f"op {o['op']} is not faked; it would reach the host")
            func(ctx, **o["args"])
        return self.calls


class _FakeFile:
    """What ops read (/proc/sys/kernel/cap_last_cap) and write (/proc files) through open()."""

    def __init__(self, fake: FakeSyscalls, path: str, mode: str) -> None:
        self.fake, self.path, self.mode = fake, path, mode

    def __enter__(self) -> "_FakeFile":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self, size: int = -1) -> str | bytes:
        """cap_last_cap has its number; the fake's other files are empty (no `#!` line)."""
        text = f"{self.fake.cap_last_cap}\n" if self.path == "/proc/sys/kernel/cap_last_cap" else ""
        return text.encode() if "b" in self.mode else text

    def write(self, data: str) -> int:
        self.fake._record("write", self.path, data)
        return len(data)


class _Strict:
    """A module stand-in: the faked calls, the real module's constants and pure helpers, nothing else."""

    def __init__(self, name: str, real, calls: dict, pure=frozenset()) -> None:
        self._name, self._real, self._calls, self._pure = name, real, calls, pure

    def __getattr__(self, attr: str):
        if attr in self._calls:
            return self._calls[attr]
        value = getattr(self._real, attr)
        if not callable(value) or attr in self._pure:
            return value
        raise AssertionError(f"fake {self._name}.{attr} is not faked; the op would reach the host")
