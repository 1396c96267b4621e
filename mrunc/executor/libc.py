"""Syscalls the `os` module lacks, through ctypes. Each raises OSError(errno) on failure, like `os` does."""

import ctypes
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

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
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what or None)
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), target)


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_b(target), flags), target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), new_root)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags))


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = (ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    return _check(_libc.prctl(option, *args))


class _Rlimit(ctypes.Structure):
    _fields_ = [("soft", ctypes.c_uint64), ("hard", ctypes.c_uint64)]


RLIM_MAX = 2**64 - 1  # RLIM_INFINITY


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2), reporting the kernel's errno (Python's resource module turns EPERM into a ValueError)."""
    if not (0 <= soft <= RLIM_MAX and 0 <= hard <= RLIM_MAX):
        raise ValueError(f"rlimit values are 0..{RLIM_MAX}, got {soft}, {hard}")
    _check(_libc.setrlimit(resource, ctypes.byref(_Rlimit(soft, hard))))


def set_name(name: str) -> None:
    """prctl(PR_SET_NAME): this process's name (comm), at most 15 bytes."""
    _check(_libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(SYS_CAPSET, ctypes.byref(header), data))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(bpf: bytes, flags: int) -> None:
    """Load a classic-BPF seccomp program (8 bytes per instruction)."""
    buffer = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.addressof(buffer))
    _check(_syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(prog)))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def open_in_root(root_fd: int, path: str, flags: int = O_PATH | os.O_CLOEXEC) -> int:
    """openat2(RESOLVE_IN_ROOT): every symlink, `..` and absolute link stays inside root_fd (CVE-2021-30465)."""
    return openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    return _check(_syscall(SYS_OPENAT2, dir_fd, _b(path), ctypes.byref(how), ctypes.sizeof(how)), path)


def fstatfs_type(fd: int) -> int:
    """f_type of fstatfs(2): which filesystem holds fd (the first field of struct statfs)."""
    buffer = ctypes.create_string_buffer(120)
    _check(_libc.fstatfs(fd, buffer))
    return ctypes.c_long.from_buffer(buffer).value


def close_range(first: int, last: int, flags: int) -> None:
    _check(_syscall(SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)))


SYS_BPF = 321
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


def bpf_prog_load_cgroup_device(code: bytes) -> int:
    """bpf(BPF_PROG_LOAD) of a cgroup device program; returns its fd. If the kernel refuses it, loads it again
    with the verifier's log on, to put the log's last lines in the error."""
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    for log_level in (0, 1):
        # union bpf_attr, BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
        attr = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8, ctypes.addressof(insns),
                           ctypes.addressof(license), log_level, len(log) * log_level,
                           ctypes.addressof(log) * log_level)
        buf = ctypes.create_string_buffer(attr, len(attr))
        result = _syscall(SYS_BPF, BPF_PROG_LOAD, buf, len(attr))
        if result >= 0:
            return result
        err = ctypes.get_errno()
    verifier = " | ".join(log.value.decode(errors="replace").strip().splitlines()[-3:])
    raise OSError(err, f"{os.strerror(err)}: verifier: {verifier}", "bpf(BPF_PROG_LOAD)")


def bpf_prog_attach_cgroup_device(prog_fd: int, cgroup_fd: int) -> None:
    """bpf(BPF_PROG_ATTACH): target_fd, attach_bpf_fd, attach_type, attach_flags."""
    attr = struct.pack("<IIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    buf = ctypes.create_string_buffer(attr, len(attr))
    _check(_syscall(SYS_BPF, BPF_PROG_ATTACH, buf, len(attr)), "bpf(BPF_PROG_ATTACH)")


def personality(persona: int) -> None:
    """personality(2): the execution domain the next execve keeps (PER_LINUX32: uname says i686)."""
    _check(_libc.personality(ctypes.c_ulong(persona)), "personality")


SYS_SCHED_SETATTR = 314


class _SchedAttr(ctypes.Structure):
    """struct sched_attr, its first version (SCHED_ATTR_SIZE_VER0: 48 bytes, no utilization clamps)."""

    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int,
                  period: int) -> None:
    """sched_setattr(2) on the calling thread (pid 0)."""
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period)
    _check(_syscall(SYS_SCHED_SETATTR, 0, ctypes.byref(attr), 0), "sched_setattr")


SYS_IOPRIO_SET = 251


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _check(_syscall(SYS_IOPRIO_SET, which, who, ioprio), "ioprio_set")
