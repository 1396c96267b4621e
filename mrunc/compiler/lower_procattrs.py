"""Process attributes the kernel keeps across execve, one syscall each on init: linux.personality (personality(2)),
process.scheduler (sched_setattr(2)), process.ioPriority (ioprio_set(2)); and process.execCPUAffinity
(sched_setaffinity(2)) for a process `mrunc exec` adds.

The checks work on a config the schema has passed and on `mrunc exec`'s process, which no schema checks: so they
check types by hand too. Pointers are relative to the process (`where`: "/process" for a config, "" for exec).
"""


from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError
from mrunc.executor import jsontext
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
    if "memoryPolicy" in config.get("linux", {}):
        memory_policy_nodes(config["linux"]["memoryPolicy"])
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
        raise ConfigError(where, f"got {jsontext.dumps(value)}; allowed: object")
    return value


def _number(parent: dict, key: str, where: str, low: int, high: int, default: int = 0) -> int:
    value = parent.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}/{key}", f"got {jsontext.dumps(value)}; allowed: an integer from {low} to {high}")
    return value


def _name(parent: dict, key: str, where: str, allowed: dict) -> str:
    value = parent.get(key)
    if value not in allowed:
        raise ConfigError(f"{where}/{key}", f"got {jsontext.dumps(value)}; allowed: {', '.join(allowed)}")
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
        raise ConfigError(where + "/flags", f"got {jsontext.dumps(flags)}; allowed: a list of flag names")
    for i, flag in enumerate(flags):
        if flag not in SCHED_FLAGS:
            raise ConfigError(f"{where}/flags/{i}", f"got {jsontext.dumps(flag)}; allowed: {', '.join(SCHED_FLAGS)} "
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


MEMPOLICY_WHERE = "/linux/memoryPolicy"
NODES_ONLINE = "/sys/devices/system/node/online"
NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")  # the kernel refuses a nodemask with these (EINVAL)
SOME_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")  # and none with these
BALANCING_MODES = ("MPOL_BIND", "MPOL_PREFERRED_MANY")  # MPOL_F_NUMA_BALANCING (kernel 5.12; PREFERRED_MANY 6.9)


def memory_policy_nodes(policy: dict) -> list[int]:
    """Check linux.memoryPolicy as set_mempolicy(2) and runc 1.3 would (nodes by mode, the flags together) and its
    nodes against the host's online NUMA nodes; -> the nodes. With MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES
    the kernel takes nodes the host lacks (it folds or remaps them), so those are not checked against the host."""
    mode, flags = policy["mode"], policy.get("flags", [])
    nodes = parse_node_list(policy.get("nodes", ""), MEMPOLICY_WHERE + "/nodes")
    if mode in NO_NODES and nodes:
        raise ConfigError(MEMPOLICY_WHERE + "/nodes", f"got {policy['nodes']!r} with {mode}; allowed: no nodes")
    if mode in SOME_NODES and not nodes:
        raise ConfigError(MEMPOLICY_WHERE + "/nodes", f"missing with {mode}; allowed: one or more NUMA nodes, "
                          "such as \"0\" or \"0-1,3\"")
    if mode == "MPOL_DEFAULT" and flags:
        raise ConfigError(MEMPOLICY_WHERE + "/flags", f"got {flags} with MPOL_DEFAULT; allowed: no flags")
    if {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} <= set(flags):
        raise ConfigError(MEMPOLICY_WHERE + "/flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES together; "
                          "allowed: one of them")
    if "MPOL_F_NUMA_BALANCING" in flags and mode not in BALANCING_MODES:
        raise ConfigError(MEMPOLICY_WHERE + "/flags", f"MPOL_F_NUMA_BALANCING with {mode}; allowed with "
                          f"{' or '.join(BALANCING_MODES)}")
    online = host_numa_nodes()
    unknown = sorted(set(nodes) - set(online or []))
    if online is not None and unknown and not {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} & set(flags):
        raise ConfigError(MEMPOLICY_WHERE + "/nodes", f"got {policy['nodes']!r}: node {unknown[0]} is not online on "
                          f"this host; allowed: its NUMA nodes {_node_list(online)}")
    return nodes


def parse_node_list(text: str, where: str) -> list[int]:
    """A node list as cpuset writes it ("0-3,7"), sorted."""
    nodes: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or dash and not high.isdigit() or int(high or low) < int(low) or int(high or low) >= 1024:
            raise ConfigError(where, f"got {text!r}; allowed: a NUMA node list such as \"0\", \"0-3\" or \"0,2\" "
                              "(nodes 0 to 1023)")
        nodes.update(range(int(low), int(high or low) + 1))
    return sorted(nodes)


def host_numa_nodes() -> list[int] | None:
    """The host's online NUMA nodes; None on a kernel without NUMA (no such file)."""
    try:
        with open(NODES_ONLINE) as f:
            return parse_node_list(f.read().strip(), NODES_ONLINE)
    except FileNotFoundError:
        return None


def _node_list(nodes: list[int]) -> str:
    return ",".join(map(str, nodes))


def lower_memory_policy(emit: Emitter, config: dict) -> None:
    """linux.memoryPolicy as one set_mempolicy(2) on init. On a kernel without NUMA the op fails (ENOSYS) and the
    container does not start, as runc 1.3's init fails there; the plan says so beforehand."""
    policy = config.get("linux", {}).get("memoryPolicy")
    if not policy:
        return
    if host_numa_nodes() is None:
        emit.note(MEMPOLICY_WHERE, "this host's kernel has no NUMA (no /sys/devices/system/node): set_mempolicy "
                  "will fail with ENOSYS and the container will not start, as runc's")
    emit("set_mempolicy", "init", MEMPOLICY_WHERE, mode=policy["mode"], nodes=memory_policy_nodes(policy),
         flags=policy.get("flags", []))


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
        raise ConfigError(where, f"got {jsontext.dumps(text)}; allowed: CPU numbers and ranges below {MAX_CPUS}, "
                          "comma-separated, e.g. \"0-3,7\"") from None
    return sorted(cpus)


def lower_affinity(emit: Emitter, process: dict, which: str, proc: str) -> None:
    """process.execCPUAffinity.initial or .final, if set and not empty (empty: leave it to the kernel)."""
    where = f"/process/execCPUAffinity/{which}"
    cpus = cpu_list(process.get("execCPUAffinity", {}).get(which, ""), where)
    if cpus:
        emit("sched_setaffinity", proc, where, cpus=cpus)
