"""Syscalls the `os` module lacks, through _ctypes. Each raises OSError(errno) on failure, like `os` does.

This uses _ctypes, the C half of ctypes, alone: the ctypes package defines dozens of C types in Python at import,
which costs ~2 ms and ~0.6 MiB of every mrunc process, for the four types used here. Structures are packed
with `struct`; a buffer the kernel writes (or whose address goes into a structure) is a char array.
"""

import _ctypes
import os
import struct


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _Long(_ctypes._SimpleCData):
    _type_ = "l"


class _ULong(_ctypes._SimpleCData):
    _type_ = "L"


class _Char(_ctypes._SimpleCData):
    _type_ = "c"


class _Function(_ctypes.CFuncPtr):
    """A libc function returning int; errno is saved for get_errno, as ctypes.CDLL(use_errno=True) does."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _SyscallFunction(_ctypes.CFuncPtr):
    _flags_ = _Function._flags_
    _restype_ = _Long


class _Libc:
    _handle = _ctypes.dlopen(None, _ctypes.RTLD_LOCAL)  # the running program, which links libc


_libc = _Libc()
_syscall = _SyscallFunction(("syscall", _libc))
_mount, _umount2, _unshare, _setns, _sethostname, _setdomainname, _prctl, _fstatfs, _setrlimit, _personality = (
    _Function((name, _libc)) for name in
    ("mount", "umount2", "unshare", "setns", "sethostname", "setdomainname", "prctl", "fstatfs", "setrlimit",
     "personality"))


def _buffer(data: bytes | int) -> _ctypes.Array:
    """A char array holding `data` (or that many zero bytes): memory the kernel may write, at a fixed address."""
    if isinstance(data, int):
        return (_Char * data)()
    return (_Char * len(data)).from_buffer_copy(data)

# x86_64 syscall numbers.
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_PIVOT_ROOT = 155
SYS_SECCOMP = 317
SYS_CLOSE_RANGE = 436
SYS_OPENAT2 = 437

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_NEW_LISTENER": 8,
    "SECCOMP_FILTER_FLAG_TSYNC_ESRCH": 16,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}

O_PATH = 0o10000000
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
PROC_SUPER_MAGIC = 0x9FA0
PROC_ROOT_INO = 1


def _check(result: int, what: str = "") -> int:
    if result < 0:
        err = _ctypes.get_errno()
        raise OSError(err, os.strerror(err), what or None)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(_mount(_b(source), _b(target), _b(fstype), _ULong(flags), _b(data)), target)


def umount2(target: str, flags: int) -> None:
    _check(_umount2(_b(target), flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), new_root)


def unshare(flags: int) -> None:
    _check(_unshare(flags))


def setns(fd: int, nstype: int) -> None:
    _check(_setns(fd, nstype))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_setdomainname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_prctl(option, _ULong(arg2), _ULong(arg3), _ULong(arg4), _ULong(arg5)))


RLIM_MAX = 2**64 - 1  # RLIM_INFINITY


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2), reporting the kernel's errno (Python's resource module turns EPERM into a ValueError)."""
    if not (0 <= soft <= RLIM_MAX and 0 <= hard <= RLIM_MAX):
        raise ValueError(f"rlimit values are 0..{RLIM_MAX}, got {soft}, {hard}")
    _check(_setrlimit(resource, struct.pack("=QQ", soft, hard)))  # struct rlimit: soft, hard


def set_name(name: str) -> None:
    """prctl(PR_SET_NAME): this process's name (comm), at most 15 bytes."""
    _check(_prctl(PR_SET_NAME, name.encode(), _ULong(0), _ULong(0), _ULong(0)))


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2), version 3: a header (version, pid 0 = this process), then two {effective, permitted,
    inheritable} sets of 32 bits, low words first."""
    header = _buffer(struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0))  # the kernel writes it on a bad version
    words = [(value >> shift) & 0xFFFFFFFF for shift in (0, 32) for value in (effective, permitted, inheritable)]
    _check(_syscall(SYS_CAPSET, header, struct.pack("=6I", *words)))


def seccomp_set_filter(bpf: bytes, flags: int) -> None:
    """Load a classic-BPF seccomp program (8 bytes per instruction)."""
    program = _buffer(bpf)
    fprog = struct.pack("=HxxxxxxQ", len(bpf) // 8, _ctypes.addressof(program))  # struct sock_fprog
    _check(_syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, fprog))


def open_in_root(root_fd: int, path: str, flags: int = O_PATH | os.O_CLOEXEC) -> int:
    """openat2(RESOLVE_IN_ROOT): every symlink, `..` and absolute link stays inside root_fd (CVE-2021-30465)."""
    return openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    how = struct.pack("=QQQ", flags, 0, resolve)  # struct open_how: flags, mode, resolve
    return _check(_syscall(SYS_OPENAT2, dir_fd, _b(path), how, len(how)), path)


def fstatfs_type(fd: int) -> int:
    """f_type of fstatfs(2): which filesystem holds fd (the first field of struct statfs)."""
    buffer = _buffer(120)
    _check(_fstatfs(fd, buffer))
    return struct.unpack_from("=l", buffer.raw)[0]


def close_range(first: int, last: int, flags: int) -> None:
    _check(_syscall(SYS_CLOSE_RANGE, first, last, flags))


SYS_BPF = 321
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


def bpf_prog_load_cgroup_device(code: bytes) -> int:
    """bpf(BPF_PROG_LOAD) of a cgroup device program; returns its fd. If the kernel refuses it, loads it again
    with the verifier's log on, to put the log's last lines in the error."""
    insns = _buffer(code)
    license = _buffer(b"GPL\0")
    log = _buffer(1 << 20)
    for log_level in (0, 1):
        # union bpf_attr, BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
        attr = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, _ctypes.addressof(insns),
                           _ctypes.addressof(license), log_level, len(log) * log_level,
                           _ctypes.addressof(log) * log_level)
        result = _syscall(SYS_BPF, BPF_PROG_LOAD, _buffer(attr), len(attr))
        if result >= 0:
            return result
        err = _ctypes.get_errno()
    verifier = " | ".join(log.value.decode(errors="replace").strip().splitlines()[-3:])
    raise OSError(err, f"{os.strerror(err)}: verifier: {verifier}", "bpf(BPF_PROG_LOAD)")


def bpf_prog_attach_cgroup_device(prog_fd: int, cgroup_fd: int) -> None:
    """bpf(BPF_PROG_ATTACH): target_fd, attach_bpf_fd, attach_type, attach_flags."""
    attr = struct.pack("<IIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    _check(_syscall(SYS_BPF, BPF_PROG_ATTACH, _buffer(attr), len(attr)), "bpf(BPF_PROG_ATTACH)")


def personality(persona: int) -> None:
    """personality(2): the execution domain the next execve keeps (PER_LINUX32: uname says i686)."""
    _check(_personality(_ULong(persona)), "personality")


SYS_SCHED_SETATTR = 314


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int,
                  period: int) -> None:
    """sched_setattr(2) on the calling thread (pid 0), with struct sched_attr's first version
    (SCHED_ATTR_SIZE_VER0: 48 bytes, no utilization clamps)."""
    attr = struct.pack("=IIQiIQQQ", 48, policy, flags, nice, priority, runtime, deadline, period)
    _check(_syscall(SYS_SCHED_SETATTR, 0, _buffer(attr), 0), "sched_setattr")


SYS_IOPRIO_SET = 251


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _check(_syscall(SYS_IOPRIO_SET, which, who, ioprio), "ioprio_set")
