"""cgroups: lowered to v1 files (per-controller hierarchies, as on this machine) or v2 files (unified)."""

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError, pointer

ROOT = "/sys/fs/cgroup"
SRC = "/linux/resources"

# Default device rules runc and crun append, so the default /dev nodes, ptys and tun work even under a
# deny-all rule (podman sends exactly that): null, zero, full, tty, urandom, random; mknod of anything.
DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 9, "rwm"), ("c", 1, 8, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"),
)


def cgroup_path(linux: dict, default: str) -> str:
    path = linux.get("cgroupsPath") or default
    if ".." in path.split("/"):
        raise ConfigError("/linux/cgroupsPath", f"got {path!r}; allowed: a path without '..'")
    return "/" + path.strip("/")


def dirs(host: dict, path: str) -> dict[str, str]:
    """Controller -> cgroup directory. v2 has one directory for all controllers ('')."""
    if host["cgroup"] == "v2":
        return {"": ROOT + path}
    return {ctrl: f"{ROOT}/{ctrl}{path}" for ctrl in host["controllers"]}


def lower(emit: Emitter, linux: dict, host: dict, path: str) -> list[str]:
    """Create the cgroup and write its limits (runtime, before fork). Returns the dirs the child enters."""
    where = "/linux/cgroupsPath"
    targets = dirs(host, path)
    for ctrl, d in targets.items():
        emit("cgroup_mkdir", "runtime", where, dir=d)
        if ctrl == "cpuset":
            for file in ("cpuset.cpus", "cpuset.mems"):
                emit("cgroup_copy_parent", "runtime", where, dir=d, file=file)
    resources = linux.get("resources", {})
    writes = _v2_writes(resources) if host["cgroup"] == "v2" else _v1_writes(resources, emit)
    for ctrl, file, value, src in writes:
        if ctrl not in targets and "" not in targets:
            emit.note(src, f"the {ctrl} controller is not mounted on this host; not applied")
            continue
        emit("cgroup_write", "runtime", src, dir=targets.get(ctrl, targets.get("")), file=file, value=value)
    return list(targets.values())


Write = tuple[str, str, str, str]  # controller, file, value, source pointer


def _device_rule(rule: tuple) -> str:
    kind, major, minor, access = rule
    if kind == "a":
        return "a"
    star = lambda n: "*" if n is None or n < 0 else str(n)  # noqa: E731
    return f"{kind} {star(major)}:{star(minor)} {access}"


def _v1_writes(r: dict, emit: Emitter) -> list[Write]:
    out: list[Write] = []
    mem = r.get("memory", {})
    for key, file in (("limit", "memory.limit_in_bytes"), ("reservation", "memory.soft_limit_in_bytes"),
                      ("swap", "memory.memsw.limit_in_bytes"), ("swappiness", "memory.swappiness")):
        if key in mem:
            out.append(("memory", file, str(mem[key]), f"{SRC}/memory/{key}"))
    if mem.get("disableOOMKiller"):
        out.append(("memory", "memory.oom_control", "1", f"{SRC}/memory/disableOOMKiller"))
    for key in ("kernel", "kernelTCP"):
        if key in mem:
            emit.note(f"{SRC}/memory/{key}", "kernel memory limits are deprecated by the kernel; not applied")
    if "pids" in r:
        limit = r["pids"]["limit"]
        out.append(("pids", "pids.max", str(limit) if limit > 0 else "max", f"{SRC}/pids/limit"))
    cpu = r.get("cpu", {})
    for key, ctrl, file in (("shares", "cpu", "cpu.shares"), ("period", "cpu", "cpu.cfs_period_us"),
                            ("quota", "cpu", "cpu.cfs_quota_us"), ("burst", "cpu", "cpu.cfs_burst_us"),
                            ("realtimePeriod", "cpu", "cpu.rt_period_us"),
                            ("realtimeRuntime", "cpu", "cpu.rt_runtime_us"), ("idle", "cpu", "cpu.idle"),
                            ("cpus", "cpuset", "cpuset.cpus"), ("mems", "cpuset", "cpuset.mems")):
        if key in cpu and cpu[key] != "":
            out.append((ctrl, file, str(cpu[key]), f"{SRC}/cpu/{key}"))
    out += _v1_devices(r.get("devices", []))
    blkio = r.get("blockIO", {})
    if "weight" in blkio:
        out.append(("blkio", "blkio.weight", str(blkio["weight"]), f"{SRC}/blockIO/weight"))
    for key, file in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                      ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                      ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                      ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
        for i, dev in enumerate(blkio.get(key, [])):
            out.append(("blkio", file, f"{dev['major']}:{dev['minor']} {dev['rate']}", f"{SRC}/blockIO/{key}/{i}"))
    for i, page in enumerate(r.get("hugepageLimits", [])):
        size = page["pageSize"]
        out.append(("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(page["limit"]), f"{SRC}/hugepageLimits/{i}"))
    net = r.get("network", {})
    if "classID" in net:
        out.append(("net_cls", "net_cls.classid", str(net["classID"]), f"{SRC}/network/classID"))
    for i, prio in enumerate(net.get("priorities", [])):
        out.append(("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}",
                    f"{SRC}/network/priorities/{i}"))
    for name, limits in r.get("rdma", {}).items():
        value = " ".join(f"{k.replace('hca', 'hca_').lower()}={v}" for k, v in sorted(limits.items()))
        out.append(("rdma", "rdma.max", f"{name} {value}", pointer("linux", "resources", "rdma", name)))
    if r.get("unified"):
        raise ConfigError(f"{SRC}/unified", "needs a cgroup v2 host; this host has its controllers on cgroup v1")
    return out


def _v1_devices(rules: list[dict]) -> list[Write]:
    """devices.allow/deny in listed order, then the default rules (src says where they come from)."""
    out: list[Write] = []
    for i, rule in enumerate(rules):
        file = "devices.allow" if rule["allow"] else "devices.deny"
        line = _device_rule((rule.get("type", "a"), rule.get("major"), rule.get("minor"), rule.get("access", "rwm")))
        out.append(("devices", file, line, f"{SRC}/devices/{i}"))
    if rules:
        for rule in DEFAULT_DEVICE_RULES:
            out.append(("devices", "devices.allow", _device_rule(rule), f"{SRC}/devices"))
    return out


def _v2_writes(r: dict) -> list[Write]:
    out: list[Write] = []
    mem = r.get("memory", {})
    if "limit" in mem:
        out.append(("memory", "memory.max", _max(mem["limit"]), f"{SRC}/memory/limit"))
    if "reservation" in mem:
        out.append(("memory", "memory.low", _max(mem["reservation"]), f"{SRC}/memory/reservation"))
    if "swap" in mem:
        swap = mem["swap"] - mem.get("limit", 0) if mem["swap"] > 0 and mem.get("limit", 0) > 0 else mem["swap"]
        out.append(("memory", "memory.swap.max", _max(swap), f"{SRC}/memory/swap"))
    if "pids" in r:
        out.append(("pids", "pids.max", _max(r["pids"]["limit"]), f"{SRC}/pids/limit"))
    cpu = r.get("cpu", {})
    if "shares" in cpu:
        weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142 if cpu["shares"] >= 2 else 1
        out.append(("cpu", "cpu.weight", str(weight), f"{SRC}/cpu/shares"))
    if "quota" in cpu or "period" in cpu:
        quota = cpu.get("quota", -1)
        out.append(("cpu", "cpu.max", f"{_max(quota)} {cpu.get('period', 100000)}", f"{SRC}/cpu/quota"))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            out.append(("cpuset", f"cpuset.{key}", cpu[key], f"{SRC}/cpu/{key}"))
    for key, value in sorted(r.get("unified", {}).items()):
        out.append((key.split(".")[0], key, value, pointer("linux", "resources", "unified", key)))
    return out


def _max(value: int) -> str:
    return str(value) if value > 0 else "max"
