"""Syscalls the `os` module lacks, through _ctypes. Each raises OSError(errno) on failure, like `os` does.

Every call here is a plain syscall, so one entry point does for all: libc's syscall(2), with x86_64 numbers
(glibc's own wrappers for these add nothing but errno, which syscall(2) sets too). This uses _ctypes, the C half
of ctypes, alone: the ctypes package defines dozens of C types in Python at import, which costs ~2 ms and
~0.6 MiB of every mrunc process, for the two used here. Structures are packed with int.to_bytes, not `struct`
(its extension module is ~0.4 ms of start-up); a buffer the kernel writes (or whose address goes into a
structure) is a char array.
"""

import _ctypes
import os
import sys


class _Long(_ctypes._SimpleCData):
    _type_ = "l"


class _Char(_ctypes._SimpleCData):
    _type_ = "c"


class _Syscall(_ctypes.CFuncPtr):
    """syscall(2), returning long; errno is saved for get_errno, as ctypes.CDLL(use_errno=True) does."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Long


class _Libc:
    _handle = _ctypes.dlopen(None, _ctypes.RTLD_LOCAL)  # the running program, which links libc


_syscall = _Syscall(("syscall", _Libc()))


def _sys(number: int, *args: int | bytes | str | None | _ctypes.Array, what: str = "") -> int:
    """syscall(number, *args): ints go as C longs (the kernel reads each argument as a full register), str as
    a path, bytes and char arrays as pointers, None as NULL. Raises OSError(errno, ..., `what`) on failure."""
    values = [_Long(a) if isinstance(a, int) else os.fsencode(a) if isinstance(a, str) else a for a in args]
    return _check(_syscall(_Long(number), *values), what)


def _buffer(data: bytes | int) -> _ctypes.Array:
    """A char array holding `data` (or that many zero bytes): memory the kernel may write, at a fixed address."""
    if isinstance(data, int):
        return (_Char * data)()
    return (_Char * len(data)).from_buffer_copy(data)


def _c(value: int, size: int, signed: bool = False) -> bytes:
    """A C integer of `size` bytes in native order, as struct.pack('=I'), ('=Q')... would give it."""
    return value.to_bytes(size, sys.byteorder, signed=signed)


def _u32(*values: int) -> bytes:
    return b"".join(_c(v, 4) for v in values)


def _u64(*values: int) -> bytes:
    return b"".join(_c(v, 8) for v in values)


def _int(data: bytes) -> int:
    return int.from_bytes(data, sys.byteorder)


# x86_64 syscall numbers (asm/unistd_64.h).
SYS_IOCTL = 16
SYS_SOCKET = 41
SYS_SENDMSG = 46
SYS_RECVMSG = 47
SYS_SOCKETPAIR = 53
SYS_CAPGET = 125
SYS_CAPSET = 126
SYS_PERSONALITY = 135
SYS_FSTATFS = 138
SYS_PIVOT_ROOT = 155
SYS_PRCTL = 157
SYS_MOUNT = 165
SYS_UMOUNT2 = 166
SYS_SETHOSTNAME = 170
SYS_SETDOMAINNAME = 171
SYS_SET_MEMPOLICY = 238
SYS_IOPRIO_SET = 251
SYS_UNSHARE = 272
SYS_PRLIMIT64 = 302
SYS_SETNS = 308
SYS_SCHED_SETATTR = 314
SYS_SECCOMP = 317
SYS_BPF = 321
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
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
PROC_SUPER_MAGIC = 0x9FA0
PROC_ROOT_INO = 1


def _check(result: int, what: str = "") -> int:
    if result < 0:
        err = _ctypes.get_errno()
        raise OSError(err, os.strerror(err), what or None)
    return result


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _sys(SYS_MOUNT, source, target, fstype, flags, data, what=target)


def umount2(target: str, flags: int) -> None:
    _sys(SYS_UMOUNT2, target, flags, what=target)


def pivot_root(new_root: str, put_old: str) -> None:
    _sys(SYS_PIVOT_ROOT, new_root, put_old, what=new_root)


def unshare(flags: int) -> None:
    _sys(SYS_UNSHARE, flags)


def setns(fd: int, nstype: int) -> None:
    _sys(SYS_SETNS, fd, nstype)


def sethostname(name: str) -> None:
    raw = name.encode()
    _sys(SYS_SETHOSTNAME, raw, len(raw))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _sys(SYS_SETDOMAINNAME, raw, len(raw))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _sys(SYS_PRCTL, option, arg2, arg3, arg4, arg5)


RLIM_MAX = 2**64 - 1  # RLIM_INFINITY


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2), reporting the kernel's errno (Python's resource module turns EPERM into a ValueError).
    As glibc does it: prlimit64 on this process (pid 0), old limits not asked for."""
    if not (0 <= soft <= RLIM_MAX and 0 <= hard <= RLIM_MAX):
        raise ValueError(f"rlimit values are 0..{RLIM_MAX}, got {soft}, {hard}")
    _sys(SYS_PRLIMIT64, 0, resource, _u64(soft, hard), None)  # struct rlimit: soft, hard


def set_name(name: str) -> None:
    """prctl(PR_SET_NAME): this process's name (comm), at most 15 bytes."""
    _sys(SYS_PRCTL, PR_SET_NAME, name.encode(), 0, 0, 0)


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2), version 3: a header (version, pid 0 = this process), then two {effective, permitted,
    inheritable} sets of 32 bits, low words first."""
    header = _buffer(_u32(_LINUX_CAPABILITY_VERSION_3, 0))  # the kernel writes it on a bad version
    words = [(value >> shift) & 0xFFFFFFFF for shift in (0, 32) for value in (effective, permitted, inheritable)]
    _sys(SYS_CAPSET, header, _u32(*words))


def seccomp_set_filter(bpf: bytes, flags: int) -> None:
    """Load a classic-BPF seccomp program (8 bytes per instruction)."""
    program = _buffer(bpf)
    fprog = _c(len(bpf) // 8, 2) + bytes(6) + _u64(_ctypes.addressof(program))  # struct sock_fprog: len, filter
    _sys(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, fprog)


def open_in_root(root_fd: int, path: str, flags: int = O_PATH | os.O_CLOEXEC) -> int:
    """openat2(RESOLVE_IN_ROOT): every symlink, `..` and absolute link stays inside root_fd (CVE-2021-30465)."""
    return openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    how = _u64(flags, 0, resolve)  # struct open_how: flags, mode, resolve
    return _sys(SYS_OPENAT2, dir_fd, path, how, len(how), what=path)


def fstatfs_type(fd: int) -> int:
    """f_type of fstatfs(2): which filesystem holds fd (the first field of struct statfs, a long)."""
    buffer = _buffer(120)
    _sys(SYS_FSTATFS, fd, buffer)
    return _int(buffer.raw[:8])


def ioctl(fd: int, request: int, arg: bytes) -> bytes:
    """ioctl(2) with a buffer argument, as fcntl.ioctl(fd, request, bytes): the buffer after the call."""
    buffer = _buffer(arg)
    _sys(SYS_IOCTL, fd, request, buffer)
    return buffer.raw


# Sockets by fd, not _socket: its module costs every mrunc process ~0.3 ms and ~0.17 MiB, for a socketpair.
AF_UNIX, AF_INET = 1, 2
SOCK_STREAM, SOCK_DGRAM, SOCK_CLOEXEC = 1, 2, 0o2000000
SOL_SOCKET, SCM_RIGHTS, MSG_CMSG_CLOEXEC = 1, 1, 0x40000000
CMSG_HEADER = 16  # struct cmsghdr: length (size_t), level, type; then the data, padded to 8 bytes


def socket(family: int, kind: int) -> int:
    """socket(2), close-on-exec: its fd."""
    return _sys(SYS_SOCKET, family, kind | SOCK_CLOEXEC, 0)


def socketpair() -> tuple[int, int]:
    """socketpair(2): two connected AF_UNIX stream sockets, close-on-exec."""
    fds = _buffer(8)
    _sys(SYS_SOCKETPAIR, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)
    return _int(fds.raw[:4]), _int(fds.raw[4:])


def _sys_restarted(number: int, *args: int | _ctypes.Array) -> int:
    """_sys, made again after EINTR as `os` calls are (PEP 475); the signal's Python handler runs in between."""
    while True:
        try:
            return _sys(number, *args)
        except InterruptedError:
            continue


def _msghdr(iovec: _ctypes.Array, control: _ctypes.Array) -> _ctypes.Array:
    """struct msghdr: no name, one iovec, the control buffer (none if empty), flags 0."""
    control_address = _ctypes.addressof(control) if len(control) else 0
    return _buffer(_u64(0, 0, _ctypes.addressof(iovec), 1, control_address, len(control), 0))


def sendmsg(sock: int, data: bytes, fds: list[int]) -> int:
    """sendmsg(2) of `data`, with `fds` in one SCM_RIGHTS message; the bytes sent. Retried on EINTR, as `os` does."""
    payload = _buffer(data)
    iovec = _buffer(_u64(_ctypes.addressof(payload), len(data)))
    control = _buffer(_rights_message(fds) if fds else b"")
    return _sys_restarted(SYS_SENDMSG, sock, _msghdr(iovec, control), 0)


def recvmsg(sock: int, size: int, max_fds: int) -> tuple[bytes, list[int]]:
    """recvmsg(2): up to `size` bytes (b"" at EOF) and the fds SCM_RIGHTS carried (close-on-exec). Retried on EINTR."""
    payload = _buffer(size)
    iovec = _buffer(_u64(_ctypes.addressof(payload), size))
    control = _buffer(_cmsg_space(4 * max_fds))
    msghdr = _msghdr(iovec, control)
    received = _sys_restarted(SYS_RECVMSG, sock, msghdr, MSG_CMSG_CLOEXEC)
    control_length = _int(msghdr.raw[40:48])  # msg_controllen, as the kernel set it
    return payload.raw[:received], _rights(control.raw[:control_length])


def _cmsg_space(data_size: int) -> int:
    return CMSG_HEADER + (data_size + 7) // 8 * 8


def _rights_message(fds: list[int]) -> bytes:
    """A control message passing `fds` (SCM_RIGHTS): header, the fds as ints, padding."""
    message = _u64(CMSG_HEADER + 4 * len(fds)) + _u32(SOL_SOCKET, SCM_RIGHTS, *fds)
    return message.ljust(_cmsg_space(4 * len(fds)), b"\0")


def _rights(control: bytes) -> list[int]:
    """The fds in the SCM_RIGHTS messages of a control buffer the kernel filled."""
    fds, offset = [], 0
    while offset + CMSG_HEADER <= len(control):
        length = _int(control[offset:offset + 8])
        level, kind = _int(control[offset + 8:offset + 12]), _int(control[offset + 12:offset + 16])
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds += [_int(control[i:i + 4]) for i in range(offset + CMSG_HEADER, offset + length - 3, 4)]
        offset += _cmsg_space(max(0, length - CMSG_HEADER))
    return fds


def close_range(first: int, last: int, flags: int) -> None:
    _sys(SYS_CLOSE_RANGE, first, last, flags)


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
        attr = (_u32(BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8)
                + _u64(_ctypes.addressof(insns), _ctypes.addressof(license))
                + _u32(log_level, len(log) * log_level) + _u64(_ctypes.addressof(log) * log_level))
        try:
            return _sys(SYS_BPF, BPF_PROG_LOAD, _buffer(attr), len(attr))
        except OSError as e:
            err = e.errno
    verifier = " | ".join(log.value.decode(errors="replace").strip().splitlines()[-3:])
    raise OSError(err, f"{os.strerror(err)}: verifier: {verifier}", "bpf(BPF_PROG_LOAD)")


def bpf_prog_attach_cgroup_device(prog_fd: int, cgroup_fd: int) -> None:
    """bpf(BPF_PROG_ATTACH): target_fd, attach_bpf_fd, attach_type, attach_flags."""
    attr = _u32(cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    _sys(SYS_BPF, BPF_PROG_ATTACH, _buffer(attr), len(attr), what="bpf(BPF_PROG_ATTACH)")


def personality(persona: int) -> None:
    """personality(2): the execution domain the next execve keeps (PER_LINUX32: uname says i686)."""
    _sys(SYS_PERSONALITY, persona, what="personality")


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int,
                  period: int) -> None:
    """sched_setattr(2) on the calling thread (pid 0), with struct sched_attr's first version
    (SCHED_ATTR_SIZE_VER0: 48 bytes, no utilization clamps): size, policy, flags, nice, priority, runtime,
    deadline, period."""
    attr = _u32(48, policy) + _u64(flags) + _c(nice, 4, signed=True) + _u32(priority) + _u64(runtime, deadline, period)
    _sys(SYS_SCHED_SETATTR, 0, _buffer(attr), 0, what="sched_setattr")


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """set_mempolicy(2) of the calling thread: mode (with its MPOL_F_ flags) over a nodemask of 64-bit words."""
    words = [0] * (max(nodes, default=0) // 64 + 1)
    for node in nodes:
        words[node // 64] |= 1 << node % 64
    mask = _buffer(_u64(*words)) if nodes else None
    # maxnode counts bits plus one: the kernel reads maxnode - 1 bits of the mask
    _sys(SYS_SET_MEMPOLICY, mode, mask, len(words) * 64 + 1 if nodes else 0, what="set_mempolicy")


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _sys(SYS_IOPRIO_SET, which, who, ioprio, what="ioprio_set")
