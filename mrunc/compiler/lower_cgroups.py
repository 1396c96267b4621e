"""cgroups: lowered to v1 files (per-controller hierarchies, as on this machine) or v2 files (unified)."""

import binascii  # not base64, which imports re (and enum): ms of every compile

from mrunc.compiler import device_rules
from mrunc.compiler import lower_devices_bpf as bpf
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


def resource_writes(emit: Emitter, linux: dict, host: dict) -> "list[Write]":
    """The control file writes linux.resources asks for, as v1 or v2 files; a note for each field not applied."""
    resources = linux.get("resources", {})
    if host["cgroup"] == "v2":
        writes = _v2_writes(resources, host, emit)
        _v2_notes(emit, resources)
        return writes
    return _v1_writes(resources, emit)


def lower_require(emit: Emitter, writes: "list[Write]", host: dict) -> None:
    """One cgroup_require op per controller a limit needs and the host lacks (the one the plan is compiled for, which
    exec checks is the one it runs on), at the first field that needs it: such a plan fails there, as runc refuses
    the container. The executor says why, so `mrunc compile` gives a plan on any host."""
    lacking: dict[str, str] = {}
    for ctrl, _file, _value, src in writes:
        if ctrl and ctrl not in host["controllers"]:
            lacking.setdefault(ctrl, src)
    for ctrl, src in lacking.items():
        where = ROOT if host["cgroup"] == "v2" else f"{ROOT}/{ctrl}"  # the v2 root lists it, or its own v1 hierarchy
        emit("cgroup_require", "runtime", src, controller=ctrl, dir=where)


def lower(emit: Emitter, linux: dict, host: dict, path: str, writes: "list[Write]") -> list[str]:
    """Create the cgroup and write its limits (`writes`, from resource_writes) (runtime, before fork). Returns the
    dirs the child enters. A write for a controller the host lacks is left to lower_require's op, which fails first."""
    where = "/linux/cgroupsPath"
    targets = dirs(host, path)
    for ctrl, d in targets.items():
        emit("cgroup_mkdir", "runtime", where, dir=d)
        if ctrl == "cpuset":
            for file in ("cpuset.cpus", "cpuset.mems"):
                emit("cgroup_copy_parent", "runtime", where, dir=d, file=file)
    if host["cgroup"] == "v2":
        _enable_controllers(emit, host, path)
        _v2_devices(emit, targets[""], linux.get("resources", {}).get("devices", []))
    emit_writes(emit, [w for w in writes if not w[0] or w[0] in host["controllers"]], host, targets)
    return list(targets.values())


def emit_writes(emit: Emitter, writes: "list[Write]", host: dict, targets: dict[str, str]) -> None:
    """One cgroup_write (or cgroup_write_first) op per write, into its controller's directory; a note for a
    controller the host does not have (`mrunc update`, compile_update.py: create fails at lower_require's op)."""
    for ctrl, file, value, src in writes:
        if ctrl and ctrl not in host["controllers"]:
            emit.note(src, f"the {ctrl} controller is not mounted on this host; not applied")
            continue
        target = targets.get(ctrl, targets.get(""))
        if isinstance(file, tuple):
            values = list(value) if isinstance(value, tuple) else [value] * len(file)
            emit("cgroup_write_first", "runtime", src, dir=target, files=list(file), values=values)
        else:
            emit("cgroup_write", "runtime", src, dir=target, file=file, value=value)


def _enable_controllers(emit: Emitter, host: dict, path: str) -> None:
    """v2: a cgroup has a controller's files only if its parent enabled the controller in
    cgroup.subtree_control, so every ancestor enables all the host's controllers, top down (as runc does)."""
    value = " ".join(f"+{ctrl}" for ctrl in host["controllers"])
    parts = path.strip("/").split("/")[:-1]
    for depth in range(len(parts) + 1):
        ancestor = "/".join([ROOT, *parts[:depth]])
        emit("cgroup_write", "runtime", "/linux/cgroupsPath", dir=ancestor, file="cgroup.subtree_control",
             value=value)


# controller, file, value, source; or files and a value for each: the first file that exists takes its value
Write = tuple[str, str | tuple[str, ...], str | tuple[str, ...], str]
WEIGHT_FILES = ("blkio.weight", "blkio.bfq.weight")
WEIGHT_DEVICE_FILES = ("blkio.weight_device", "blkio.bfq.weight_device")
IO_WEIGHT_FILES = ("io.bfq.weight", "io.weight")


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
    out += _v1_blkio_weights(r.get("blockIO", {}), emit)
    blkio = r.get("blockIO", {})
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
    out += _rdma(r.get("rdma", {}))
    if r.get("unified"):
        raise ConfigError(f"{SRC}/unified", "needs a cgroup v2 host; this host has its controllers on cgroup v1")
    return out


def _v1_blkio_weights(blkio: dict, emit: Emitter) -> list[Write]:
    """Weights live in CFQ's blkio.weight* or BFQ's blkio.bfq.weight* files, as the host's I/O scheduler decides
    (this host: BFQ); the cgroup_write_first op writes whichever exists, as runc does. Leaf weights went with CFQ."""
    out: list[Write] = []
    gone = "leaf weights are gone from the kernel; not applied"
    if "weight" in blkio:
        out.append(("blkio", WEIGHT_FILES, str(blkio["weight"]), f"{SRC}/blockIO/weight"))
    for i, dev in enumerate(blkio.get("weightDevice", [])):
        if "weight" in dev:
            out.append(("blkio", WEIGHT_DEVICE_FILES, f"{dev['major']}:{dev['minor']} {dev['weight']}",
                        f"{SRC}/blockIO/weightDevice/{i}"))
        if "leafWeight" in dev:
            emit.note(f"{SRC}/blockIO/weightDevice/{i}/leafWeight", gone)
    if "leafWeight" in blkio:
        emit.note(f"{SRC}/blockIO/leafWeight", gone)
    return out


def _device_rules(rules: list[dict]) -> list[device_rules.Rule]:
    """The listed rules, then the default ones (src says where each comes from)."""
    listed: list[device_rules.Rule] = []
    for i, rule in enumerate(rules):
        kind = rule.get("type", "a")
        major, minor = (None, None) if kind == "a" else (_wildcard(rule.get("major")), _wildcard(rule.get("minor")))
        listed.append((rule["allow"], kind, major, minor, rule.get("access", "rwm"), f"{SRC}/devices/{i}"))
    return listed + [(True, *default, f"{SRC}/devices") for default in DEFAULT_DEVICE_RULES] if rules else []


def _v1_devices(rules: list[dict]) -> list[Write]:
    """devices.allow/deny in listed order, then the default rules; the kernel merges them. Emulating that here
    refuses what v1 would ignore silently, as on v2 (device_rules.py)."""
    listed = _device_rules(rules)
    device_rules.emulate(listed)
    return [("devices", f"devices.{'allow' if allow else 'deny'}", device_rules.text(kind, major, minor, access), src)
            for allow, kind, major, minor, access, src in listed]


def _v2_devices(emit: Emitter, cgroup: str, rules: list[dict]) -> None:
    """v2 has no devices files: the v1 controller's state after the rules (emulated) becomes a BPF program."""
    if not rules:
        return
    state = device_rules.emulate(_device_rules(rules))
    code = bpf.encode(bpf.assemble(state))
    encoded = binascii.b2a_base64(code, newline=False).decode()
    emit("cgroup_device_filter", "runtime", f"{SRC}/devices", dir=cgroup, bpf=encoded,
         rules=state.lines(), listing=bpf.disassemble(code))


def _wildcard(number: int | None) -> int | None:
    return None if number is None or number < 0 else number


def _v2_writes(r: dict, host: dict, emit: Emitter) -> list[Write]:
    out = _v2_memory(r.get("memory", {}))
    if "pids" in r:
        out.append(("pids", "pids.max", _max(r["pids"]["limit"]), f"{SRC}/pids/limit"))
    out += _v2_cpu(r.get("cpu", {}))
    out += _v2_io(r.get("blockIO", {}), emit)
    for i, page in enumerate(r.get("hugepageLimits", [])):
        out.append(("hugetlb", f"hugetlb.{page['pageSize']}.max", str(page["limit"]), f"{SRC}/hugepageLimits/{i}"))
    out += _rdma(r.get("rdma", {}))
    for key, value in sorted(r.get("unified", {}).items()):
        out.append((_unified_controller(key, value, host), key, value, pointer("linux", "resources", "unified", key)))
    return out


V2_HAS_NO_FILE = ("blockIO/leafWeight", "memory/swappiness", "memory/disableOOMKiller", "memory/kernel",
                  "memory/kernelTCP", "cpu/realtimePeriod", "cpu/realtimeRuntime", "network/classID",
                  "network/priorities")


def _v2_notes(emit: Emitter, r: dict) -> None:
    """Fields cgroup v2 has no file for (runc, too, leaves them unapplied there)."""
    for field in V2_HAS_NO_FILE:
        group, key = field.split("/")
        if key in r.get(group, {}):
            emit.note(f"{SRC}/{field}", "cgroup v2 has no file for this; not applied")


def _v2_memory(mem: dict) -> list[Write]:
    out: list[Write] = []
    limit = mem.get("limit", 0)
    if "limit" in mem:
        out.append(("memory", "memory.max", _v2_bytes(limit), f"{SRC}/memory/limit"))
    if "reservation" in mem:
        out.append(("memory", "memory.low", _v2_bytes(mem["reservation"]), f"{SRC}/memory/reservation"))
    if "swap" in mem or limit == -1:
        out.append(("memory", "memory.swap.max", _v2_swap(mem.get("swap", 0), limit), f"{SRC}/memory/swap"))
    return [w for w in out if w[2] != ""]


def _v2_bytes(value: int) -> str:
    """-1 is unlimited ('max'); 0 leaves the file alone (runc: unset), as memory.low=max would protect it all."""
    return "max" if value == -1 else "" if value == 0 else str(value)


def _v2_swap(swap: int, limit: int) -> str:
    """OCI's swap is memory+swap (v1's memsw); v2's memory.swap.max is swap alone: the difference.
    -1 is unlimited; 0 leaves it unset, except that an unlimited memory then means unlimited swap (runc)."""
    if swap == -1 or (swap == 0 and limit == -1):
        return "max"
    if swap == 0:
        return ""
    if limit <= 0:
        raise ConfigError(f"{SRC}/memory/swap", f"got {swap} without a memory limit; allowed: with /linux/resources/"
                          "memory/limit set (swap is memory+swap), or -1")
    if swap < limit:
        raise ConfigError(f"{SRC}/memory/swap", f"got {swap}, less than the memory limit {limit}; allowed: >= the "
                          "limit (swap is memory+swap), or -1")
    return str(swap - limit)


def _v2_cpu(cpu: dict) -> list[Write]:
    out: list[Write] = []
    if cpu.get("shares"):
        weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142 if cpu["shares"] >= 2 else 1
        out.append(("cpu", "cpu.weight", str(weight), f"{SRC}/cpu/shares"))
    if cpu.get("quota") or cpu.get("period"):
        value = _max(cpu.get("quota", -1)) + (f" {cpu['period']}" if cpu.get("period") else "")
        out.append(("cpu", "cpu.max", value, f"{SRC}/cpu/quota" if "quota" in cpu else f"{SRC}/cpu/period"))
    if "burst" in cpu:
        out.append(("cpu", "cpu.max.burst", str(cpu["burst"]), f"{SRC}/cpu/burst"))
    if "idle" in cpu:
        out.append(("cpu", "cpu.idle", str(cpu["idle"]), f"{SRC}/cpu/idle"))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            out.append(("cpuset", f"cpuset.{key}", cpu[key], f"{SRC}/cpu/{key}"))
    return out


def _v2_io(blkio: dict, emit: Emitter) -> list[Write]:
    """Weights go to BFQ's io.bfq.weight (blkio's own 10..1000) where the kernel has BFQ's cgroup files, else to
    io.weight (1..10000, converted as runc converts it): cgroup_write_first writes the first that exists, as runc
    does. Throttles become io.max lines."""
    out: list[Write] = []
    if blkio.get("weight"):
        weight = blkio["weight"]
        out.append(("io", IO_WEIGHT_FILES, (str(weight), str(_io_weight(weight))), f"{SRC}/blockIO/weight"))
    for i, dev in enumerate(blkio.get("weightDevice", [])):
        if dev.get("weight"):
            device, weight = f"{dev['major']}:{dev['minor']}", dev["weight"]
            out.append(("io", IO_WEIGHT_FILES, (f"{device} {weight}", f"{device} {_io_weight(weight)}"),
                        f"{SRC}/blockIO/weightDevice/{i}"))
        if "leafWeight" in dev:
            emit.note(f"{SRC}/blockIO/weightDevice/{i}/leafWeight", "cgroup v2 has no file for this; not applied")
    for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, dev in enumerate(blkio.get(key, [])):
            out.append(("io", "io.max", f"{dev['major']}:{dev['minor']} {name}={dev['rate']}",
                        f"{SRC}/blockIO/{key}/{i}"))
    return out


def _io_weight(blkio_weight: int) -> int:
    return 1 + (blkio_weight - 10) * 9999 // 990


RDMA_KEYS = {"hcaHandles": "hca_handle", "hcaObjects": "hca_object"}  # the kernel's rdma.max keys (singular)


def _rdma(rdma: dict) -> list[Write]:
    """One rdma.max line per device, as v1 and v2 both take it."""
    out: list[Write] = []
    for name, limits in sorted(rdma.items()):
        value = " ".join(f"{RDMA_KEYS[k]}={v}" for k, v in sorted(limits.items()) if k in RDMA_KEYS)
        out.append(("rdma", "rdma.max", f"{name} {value}", pointer("linux", "resources", "rdma", name)))
    return out


UNIFIED_CGROUP_FILES = ("cgroup.max.depth", "cgroup.max.descendants")


def _unified_controller(key: str, value: str, host: dict) -> str:
    """Check a linux.resources.unified key names one control file of an available controller."""
    where = pointer("linux", "resources", "unified", key)
    ctrl, dot, rest = key.partition(".")
    if "/" in key or ".." in key or not dot or not rest:
        raise ConfigError(where, f"got key {key!r}; allowed: a control file name like 'memory.high' (no '/')")
    if "\n" in value:
        raise ConfigError(where, "the value has a newline; allowed: one line")
    if ctrl == "cgroup":
        if key not in UNIFIED_CGROUP_FILES:
            raise ConfigError(where, f"got {key!r}; allowed cgroup.* files: {', '.join(UNIFIED_CGROUP_FILES)}")
        return ""
    if ctrl not in host["controllers"]:
        raise ConfigError(where, f"the {ctrl} controller is not available on this host; allowed: "
                          f"{', '.join(host['controllers'])}")
    return ctrl


def _max(value: int) -> str:
    return str(value) if value > 0 else "max"
