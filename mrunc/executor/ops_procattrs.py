"""Process attributes the kernel keeps across execve: execution domain (personality), scheduling policy, I/O
priority, CPU affinity. Each op is one syscall, made while the process is still root (before seccomp and the
capability drop)."""

import os

from mrunc.executor import libc
from mrunc.executor.flags import mask
from mrunc.executor.optable import Context, op

# personality(2) domains, sys/personality.h
PERSONALITIES = {"PER_LINUX": 0x0000, "PER_LINUX32": 0x0008}


@op("personality", "init", "domain")
def personality(ctx: Context, domain: str) -> None:
    """personality(2): the execution domain of init, kept by execve (PER_LINUX32: uname -m says i686)."""
    libc.personality(PERSONALITIES[domain])


# sched_setattr(2) policies and flags, linux/sched.h (SCHED_ISO is reserved: the kernel has none)
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_IDLE": 5,
                  "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10}


@op("sched_setattr", "init", "policy", "flags", "nice", "priority", "runtime", "deadline", "period")
def sched_setattr(ctx: Context, policy: str, flags: list[str], nice: int, priority: int, runtime: int, deadline: int,
                  period: int) -> None:
    """sched_setattr(2) on init: scheduling policy, nice, static priority or deadline parameters; execve and the
    user process's children keep them (unless SCHED_FLAG_RESET_ON_FORK)."""
    libc.sched_setattr(SCHED_POLICIES[policy], mask(flags, SCHED_FLAGS), nice, priority, runtime, deadline, period)


# ioprio_set(2) classes, linux/ioprio.h
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13


@op("ioprio_set", "init", "io_class", "priority")
def ioprio_set(ctx: Context, io_class: str, priority: int) -> None:
    """ioprio_set(2) on init (IOPRIO_WHO_PROCESS, pid 0): I/O scheduling class and level, kept by execve and fork."""
    libc.ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASSES[io_class] << IOPRIO_CLASS_SHIFT | priority)


@op("sched_setaffinity", "child init", "cpus")
def sched_setaffinity(ctx: Context, cpus: list[int]) -> None:
    """sched_setaffinity(2) of this process: the CPUs it may run on; fork and execve keep them."""
    os.sched_setaffinity(0, cpus)


# set_mempolicy(2) modes and mode flags, linux/mempolicy.h
MEMPOLICY_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
                   "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MEMPOLICY_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_STATIC_NODES": 1 << 15}


@op("set_mempolicy", "init", "mode", "nodes", "flags")
def set_mempolicy(ctx: Context, mode: str, nodes: list[int], flags: list[str]) -> None:
    """set_mempolicy(2) on init: the NUMA memory policy its allocations follow; fork and execve keep it."""
    libc.set_mempolicy(MEMPOLICY_MODES[mode] | mask(flags, MEMPOLICY_FLAGS), nodes)
