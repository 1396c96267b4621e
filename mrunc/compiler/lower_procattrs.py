"""Process attributes the kernel keeps across execve, one syscall each on init: linux.personality (personality(2)),
process.scheduler (sched_setattr(2)), process.ioPriority (ioprio_set(2)); and process.execCPUAffinity
(sched_setaffinity(2)) for a process `mrunc exec` adds.

The checks work on a config the schema has passed and on `mrunc exec`'s process, which no schema checks: so they
check types by hand too. Pointers are relative to the process (`where`: "/process" for a config, "" for exec).
"""

import json

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError
from mrunc.executor.ops_procattrs import IOPRIO_CLASSES, SCHED_FLAGS, SCHED_POLICIES

# config-linux.md "Personality": domain -> personality(2) domain
PERSONALITY_DOMAINS = {"LINUX": "PER_LINUX", "LINUX32": "PER_LINUX32"}
SCHED_FIFO_RR = ("SCHED_FIFO", "SCHED_RR")
DEADLINE_FIELDS = ("runtime", "deadline", "period")
INT32 = (-(2**31), 2**31 - 1)
UINT64 = (0, 2**64 - 1)
MAX_CPUS = 4096  # the kernel's NR_CPUS at most (CONFIG_NR_CPUS on x86_64)


def check(config: dict) -> None:
    personality = config.get("linux", {}).get("personality")
    if personality and personality.get("flags"):
        raise ConfigError("/linux/personality/flags", f"got {personality['flags']}; allowed: [] (the spec defines "
                          "no personality flags)")
    if "process" in config:
        check_process(config["process"], "/process")


def check_process(process: dict, where: str) -> None:
    if "scheduler" in process:
        _check_scheduler(_object(process["scheduler"], where + "/scheduler"), where + "/scheduler")
    if "ioPriority" in process:
        _check_io_priority(_object(process["ioPriority"], where + "/ioPriority"), where + "/ioPriority")
    if "execCPUAffinity" in process:
        affinity = _object(process["execCPUAffinity"], where + "/execCPUAffinity")
        for which in ("initial", "final"):
            cpu_list(affinity.get(which, ""), f"{where}/execCPUAffinity/{which}")


def _object(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(where, f"got {json.dumps(value)}; allowed: object")
    return value


def _number(parent: dict, key: str, where: str, low: int, high: int, default: int = 0) -> int:
    value = parent.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}/{key}", f"got {json.dumps(value)}; allowed: an integer from {low} to {high}")
    return value


def _name(parent: dict, key: str, where: str, allowed: dict) -> str:
    value = parent.get(key)
    if value not in allowed:
        raise ConfigError(f"{where}/{key}", f"got {json.dumps(value)}; allowed: {', '.join(allowed)}")
    return value


def _check_scheduler(scheduler: dict, where: str) -> None:
    """config.md "Scheduler", as runc validates it, plus what the kernel would refuse at start. SCHED_ISO (in the
    spec's enum) is reserved: the kernel has no such policy."""
    policy = _name(scheduler, "policy", where, SCHED_POLICIES)
    _number(scheduler, "nice", where, -20, 19)
    priority = _number(scheduler, "priority", where, *INT32)
    if policy in SCHED_FIFO_RR:
        _number(scheduler, "priority", where, 1, 99)
    elif priority:
        raise ConfigError(where + "/priority", f"only for SCHED_FIFO or SCHED_RR, not {policy}; remove it")
    for key in DEADLINE_FIELDS:
        if _number(scheduler, key, where, *UINT64) and policy != "SCHED_DEADLINE":
            raise ConfigError(f"{where}/{key}", f"only for SCHED_DEADLINE, not {policy}; remove it")
    if policy == "SCHED_DEADLINE":
        _check_deadline(scheduler, where)
    flags = scheduler.get("flags", [])
    if not isinstance(flags, list):
        raise ConfigError(where + "/flags", f"got {json.dumps(flags)}; allowed: a list of flag names")
    for i, flag in enumerate(flags):
        if flag not in SCHED_FLAGS:
            raise ConfigError(f"{where}/flags/{i}", f"got {json.dumps(flag)}; allowed: {', '.join(SCHED_FLAGS)} "
                              "(the UTIL_CLAMP flags need utilization values the spec does not define)")


def _check_deadline(scheduler: dict, where: str) -> None:
    """sched(7): 1024 ns <= runtime <= deadline <= period (a period of 0 means the deadline)."""
    runtime, deadline = scheduler.get("runtime", 0), scheduler.get("deadline", 0)
    period = scheduler.get("period", 0) or deadline
    if runtime < 1024:
        raise ConfigError(where + "/runtime", f"got {runtime}; allowed: at least 1024 (ns) for SCHED_DEADLINE")
    if deadline < runtime:
        raise ConfigError(where + "/deadline", f"got {deadline}; allowed: at least runtime ({runtime} ns)")
    if period < deadline:
        raise ConfigError(where + "/period", f"got {period}; allowed: 0 or at least deadline ({deadline} ns)")


def _check_io_priority(io_priority: dict, where: str) -> None:
    """config.md "IO Priority": a class and a level from 0 (highest) to 7 (lowest)."""
    _name(io_priority, "class", where, IOPRIO_CLASSES)
    _number(io_priority, "priority", where, 0, 7)


def lower_personality(emit: Emitter, config: dict) -> None:
    personality = config.get("linux", {}).get("personality")
    if personality:
        emit("personality", "init", "/linux/personality", domain=PERSONALITY_DOMAINS[personality["domain"]])


def lower_process(emit: Emitter, process: dict) -> None:
    """The scheduler, then the I/O priority (runc's order), on init while it is root: raising either needs
    CAP_SYS_NICE (or CAP_SYS_ADMIN for the RT I/O class)."""
    scheduler = process.get("scheduler")
    if scheduler:
        emit("sched_setattr", "init", "/process/scheduler", policy=scheduler["policy"],
             flags=scheduler.get("flags", []), nice=scheduler.get("nice", 0), priority=scheduler.get("priority", 0),
             **{key: scheduler.get(key, 0) for key in DEADLINE_FIELDS})
    io_priority = process.get("ioPriority")
    if io_priority:
        emit("ioprio_set", "init", "/process/ioPriority", io_class=io_priority["class"],
             priority=io_priority.get("priority", 0))


def cpu_list(text: object, where: str) -> list[int]:
    """A cpu list as the kernel writes one ("0-3,7"), as sorted CPU numbers."""
    cpus: set[int] = set()
    try:
        assert isinstance(text, str)
        for part in filter(None, (p.strip() for p in text.split(","))):
            first, dash, last = part.partition("-")
            low = int(first)
            high = int(last) if dash else low
            assert 0 <= low <= high < MAX_CPUS
            cpus.update(range(low, high + 1))
    except (AssertionError, ValueError):
        raise ConfigError(where, f"got {json.dumps(text)}; allowed: CPU numbers and ranges below {MAX_CPUS}, "
                          "comma-separated, e.g. \"0-3,7\"") from None
    return sorted(cpus)


def lower_affinity(emit: Emitter, process: dict, which: str, proc: str) -> None:
    """process.execCPUAffinity.initial or .final, if set and not empty (empty: leave it to the kernel)."""
    where = f"/process/execCPUAffinity/{which}"
    cpus = cpu_list(process.get("execCPUAffinity", {}).get(which, ""), where)
    if cpus:
        emit("sched_setaffinity", proc, where, cpus=cpus)
