"""Kernel constants by name. Plans carry names (`MS_BIND`), the executor turns them into numbers here.

Values are for Linux x86_64 (the plan's host fingerprint records the arch it was compiled for).
"""

MOUNT_FLAGS = {
    "MS_RDONLY": 0x1,
    "MS_NOSUID": 0x2,
    "MS_NODEV": 0x4,
    "MS_NOEXEC": 0x8,
    "MS_SYNCHRONOUS": 0x10,
    "MS_REMOUNT": 0x20,
    "MS_MANDLOCK": 0x40,
    "MS_DIRSYNC": 0x80,
    "MS_NOSYMFOLLOW": 0x100,
    "MS_NOATIME": 0x400,
    "MS_NODIRATIME": 0x800,
    "MS_BIND": 0x1000,
    "MS_MOVE": 0x2000,
    "MS_REC": 0x4000,
    "MS_SILENT": 0x8000,
    "MS_UNBINDABLE": 0x20000,
    "MS_PRIVATE": 0x40000,
    "MS_SLAVE": 0x80000,
    "MS_SHARED": 0x100000,
    "MS_RELATIME": 0x200000,
    "MS_STRICTATIME": 0x1000000,
    "MS_LAZYTIME": 0x2000000,
}

UMOUNT_FLAGS = {"MNT_FORCE": 1, "MNT_DETACH": 2, "MNT_EXPIRE": 4, "UMOUNT_NOFOLLOW": 8}

CLONE_FLAGS = {
    "CLONE_NEWTIME": 0x80,
    "CLONE_NEWNS": 0x20000,
    "CLONE_NEWCGROUP": 0x2000000,
    "CLONE_NEWUTS": 0x4000000,
    "CLONE_NEWIPC": 0x8000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

# OCI namespace type -> clone flag.
NAMESPACE_FLAGS = {
    "mount": "CLONE_NEWNS",
    "pid": "CLONE_NEWPID",
    "uts": "CLONE_NEWUTS",
    "ipc": "CLONE_NEWIPC",
    "network": "CLONE_NEWNET",
    "user": "CLONE_NEWUSER",
    "cgroup": "CLONE_NEWCGROUP",
    "time": "CLONE_NEWTIME",
}

CAPABILITIES = {
    name: number
    for number, name in enumerate(
        [
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
            "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
            "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
            "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
        ]
    )
}

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

# The largest uid/gid a process may be given, as runc (its user package's maxID): a uid_t of 2^32-1 is -1, which
# setresuid/setresgid take as "leave unchanged", so the process would keep running as root.
MAX_ID = 2**31 - 1
MAX_RLIMIT = 2**64 - 1  # RLIM_INFINITY: unlimited

# Time namespace clocks, as /proc/self/timens_offsets names them.
TIME_CLOCKS = {"monotonic": "monotonic", "boottime": "boottime"}


def mask(names: list[str], table: dict[str, int]) -> int:
    """OR together the values of flag names; an unknown name is a KeyError."""
    value = 0
    for name in names:
        value |= table[name]
    return value
