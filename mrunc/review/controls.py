"""The audit's controls: the Kubernetes Pod Security Standards (baseline and restricted) mapped onto what an
OCI config can say, evaluated on the plan's facts. A control's id is stable: profiles and CI refer to it.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mrunc.executor.flags import CAPABILITIES
from mrunc.review.facts import Fact, Model

SEVERITIES = ("critical", "high", "medium", "low")
# Capabilities the Pod Security Standards baseline allows to be added (the container runtimes' default set).
BASELINE_CAPS = {"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                 "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
                 "CAP_SYS_CHROOT"}
RESTRICTED_CAPS = {"CAP_NET_BIND_SERVICE"}
# The sysctls the Pod Security Standards baseline calls safe (namespaced and isolated from the host).
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
# The paths runtimes mask and make read-only by default (the Pod Security Standards' "Default" procMount).
DEFAULT_MASKED = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                  "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
DEFAULT_READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                  "/var/run/containerd/containerd.sock", "/run/podman/podman.sock", "/var/run/podman/podman.sock",
                  "/run/crio/crio.sock", "/var/run/crio/crio.sock")
# Host paths worst first: (matches, severity when writable, what the container gets).
HOST_PATHS: tuple[tuple[Callable[[str], bool], str, str], ...] = (
    (lambda p: p == "/", "critical", "the host's whole filesystem"),
    (lambda p: p in ENGINE_SOCKETS, "critical", "a container engine's API: a privileged container is one call away"),
    (lambda p: _under(p, "/proc"), "critical", "the host's /proc: every host process, kernel knobs"),
    (lambda p: _under(p, "/sys"), "critical", "the host's /sys: kernel and device settings"),
    (lambda p: _under(p, "/dev"), "critical", "the host's device nodes"),
    (lambda p: _under(p, "/etc"), "high", "the host's configuration: users, sudoers, services"),
    (lambda p: p in ("/run", "/var/run") or _socket(p), "high", "host service sockets"),
    (lambda p: _under(p, "/boot"), "high", "the host's kernels and boot loader"),
)
HOST_NAMESPACE_RISK = {
    "pid": ("high", "the host's processes: see, signal and ptrace them"),
    "ipc": ("high", "the host's System V IPC and POSIX message queues"),
    "network": ("high", "the host's network stack: its interfaces, ports and loopback-only services"),
    "mount": ("high", "the host's mount table: the container's mounts are made there, under its rootfs (chroot)"),
    "uts": ("medium", "the host's hostname and domain name"),
    "cgroup": ("medium", "the host's cgroup tree as its own view"),
}
HOST_NS_PATH = re.compile(r"^/proc/(1|self|thread-self)/ns/")


@dataclass(frozen=True)
class Hit:
    pointer: str
    ops: tuple[int, ...]
    grants: str
    severity: str = ""  # empty: the control's own
    rank: int = 0  # worst first within a control


@dataclass(frozen=True)
class Control:
    id: str
    level: str  # baseline: in both profiles; restricted: only in restricted
    severity: str
    title: str
    why: str
    check: Callable[[Model], Iterator[Hit]]


def _socket(path: str) -> bool:
    return path in ENGINE_SOCKETS or path.endswith(".sock")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _ops(facts: list[Fact]) -> tuple[int, ...]:
    return tuple(sorted({i for f in facts for i in f.ops}))


def caps(m: Model, *kinds: str) -> dict[str, Fact]:
    """Capability -> the first fact granting it, over the given sets."""
    found: dict[str, Fact] = {}
    for f in m.of("capabilities"):
        kind, cap = f.key.split(" ")
        if kind in kinds:
            found.setdefault(cap, f)
    return found


GRANTED = ("bounding", "effective", "permitted", "ambient")


def _all_caps(m: Model) -> Iterator[Hit]:
    bounding = caps(m, "bounding")
    if set(bounding) >= set(CAPABILITIES):
        facts = list(bounding.values())
        yield Hit(facts[0].src, _ops(facts), f"all {len(CAPABILITIES)} capabilities, CAP_SYS_ADMIN among them")


def _caps_beyond(allowed: set[str]) -> Callable[[Model], Iterator[Hit]]:
    def check(m: Model) -> Iterator[Hit]:
        extra = {cap: f for cap, f in caps(m, *GRANTED).items() if cap not in allowed}
        if extra:
            facts = list(extra.values())
            yield Hit(facts[0].src, _ops(facts), ", ".join(sorted(extra)))

    return check


def _no_seccomp(m: Model) -> Iterator[Hit]:
    if not m.get("seccomp", "filter"):
        yield Hit("/linux/seccomp", (), "every syscall the capabilities allow: keyctl, bpf, unshare, ptrace, ...")


def _seccomp_allows_by_default(m: Model) -> Iterator[Hit]:
    default = m.get("seccomp", "default action")
    if default and default.value in ("ALLOW", "LOG"):
        yield Hit("/linux/seccomp/defaultAction", default.ops, f"every syscall not listed ({default.value})")


def _mounted(m: Model, fstype: str, host_path: str) -> list[Fact]:
    """Mount facts that put `fstype` (or a bind of the host's `host_path`) somewhere."""
    return [f for f in m.of("mounts") if f.key.startswith("mount ") and any(
        o["op"] == "mount" and (o.get("fstype") == fstype or o.get("source") == host_path) for o in f.value)]


def _read_only(f: Fact) -> bool:
    return any("MS_RDONLY" in o["flags"] for o in f.value)


def _unmasked(m: Model) -> Iterator[Hit]:
    mounted = {"/proc": _mounted(m, "proc", "/proc"), "/sys": _mounted(m, "sysfs", "/sys")}
    missing = [p for p in DEFAULT_MASKED if mounted["/" + p.split("/")[1]] and not m.get("mounts", f"masked {p}")]
    if missing:
        facts = mounted["/proc"] + mounted["/sys"]
        yield Hit("/linux/maskedPaths", _ops(facts), "reads of " + ", ".join(missing))


def _writable_kernel_fs(m: Model) -> Iterator[Hit]:
    for f in _mounted(m, "proc", "/proc"):
        open_paths = [p for p in DEFAULT_READONLY if not _read_only(f) and not m.get("mounts", f"read-only {p}")
                      and not m.get("mounts", f"masked {p}")]
        if open_paths:
            yield Hit("/linux/readonlyPaths", f.ops, f"writes to {', '.join(open_paths)} (host kernel settings)")
    for f in _mounted(m, "sysfs", "/sys"):
        if not _read_only(f):
            yield Hit(f.src, f.ops, f"writes to /sys at {f.key.split(' ')[1]} (host kernel and device settings)")


def _host_namespace(kind: str) -> Callable[[Model], Iterator[Hit]]:
    def check(m: Model) -> Iterator[Hit]:
        f = m.get("namespaces", kind)
        if f and (f.value == "host" or HOST_NS_PATH.match(f.value.removeprefix("joined "))):
            yield Hit(f.src, f.ops, HOST_NAMESPACE_RISK[kind][1])

    return check


def host_binds(m: Model) -> Iterator[tuple[Fact, str, bool]]:
    """(mount fact, host source, read-only) for each bind of a host path from outside the bundle and rootfs,
    other than the container's own cgroup directories."""
    inside = tuple(p for p in (m.plan.get("bundle"), m.rootfs) if p)
    for f in m.of("mounts"):
        for i in f.ops:
            o = m.ops[i]
            a = o["args"]
            if o["op"] != "mount" or "MS_BIND" not in a["flags"] or not a["source"] or a["source"].startswith("<"):
                continue
            if any(_under(a["source"], p) for p in inside) or "<cgroup>" in str(m.normal(a["source"])):
                continue
            yield f, a["source"], _read_only(f)


def _host_paths(sensitive: bool) -> Callable[[Model], Iterator[Hit]]:
    def check(m: Model) -> Iterator[Hit]:
        for f, source, read_only in host_binds(m):
            rank = next((r for r, (match, _, _) in enumerate(HOST_PATHS) if match(source)), None)
            if (rank is not None) != sensitive:
                continue
            mode = "read-only" if read_only else "read-write"
            if rank is None:
                yield Hit(f.src, f.ops, f"{mode} bind of host {source} at {f.key.split(' ')[1]}")
                continue
            severity, what = HOST_PATHS[rank][1:]
            if read_only and not _socket(source):  # connect(2) needs no write access to the mount
                severity = SEVERITIES[SEVERITIES.index(severity) + 1]
            yield Hit(f.src, f.ops, f"{mode} bind of host {source} at {f.key.split(' ')[1]}: {what}", severity, rank)

    return check


def _shared_propagation(m: Model) -> Iterator[Hit]:
    """A config mount made (r)shared joins its source's peer group: on a host path, mounts go both ways. A shared /
    keeps the peer groups of the host's mounts below the rootfs."""
    for f in m.of("mounts"):
        if f.key.startswith("mount ") and any("MS_SHARED" in o["flags"] for o in f.value if o["op"] == "mount"
                                              and not o.get("source") and not o.get("fstype")):
            yield Hit(f.src, f.ops, f"{f.key.split(' ')[1]} shared: mounts made in the container reach the host's "
                      "and the host's reach the container")
    root = m.get("mounts", "/ propagation")
    if root and "MS_SHARED" in root.value:
        yield Hit(root.src, root.ops, "/ shared: host mounts below the rootfs stay in the host's peer groups",
                  "medium", 1)


def _host_devices(m: Model) -> Iterator[Hit]:
    for f in m.of("devices"):
        if f.key.startswith("node ") and re.match(r"^/linux/devices/\d+$", f.src):
            if "bind" in f.value:
                yield Hit(f.src, f.ops, f"the host's {f.value['bind']}", "high")
            else:
                kind = "block" if f.value["type"] == "b" else "char"
                yield Hit(f.src, f.ops, f"{kind} device {f.value['major']}:{f.value['minor']} at {f.key[5:]}",
                          "high" if kind == "block" else "medium")


def _host_netdevs(m: Model) -> Iterator[Hit]:
    for f in m.of("devices"):
        if f.key.startswith("network device "):
            yield Hit(f.src, f.ops, f"the host's network interface {f.key.split(' ', 2)[2]}, as {f.value['name']}")


def _devices_allow_all(m: Model) -> Iterator[Hit]:
    rules = m.get("devices", "cgroup rules")
    state = "allow"  # a new cgroup inherits its parent's rules: on the host's root cgroup, everything
    for rule in rules.value if rules else []:
        if rule in ("allow a", "deny a"):
            state = rule.split()[0]
    if state == "allow":
        yield Hit("/linux/resources/devices", rules.ops if rules else (),
                  "read, write and mknod of every device the capabilities reach (disks, /dev/mem, ...)")


def _unsafe_sysctls(m: Model) -> Iterator[Hit]:
    for f in m.of("process"):
        if f.key.startswith("sysctl ") and f.key[7:] not in SAFE_SYSCTLS:
            yield Hit(f.src, f.ops, f"{f.key[7:]} = {f.value}")


def _apparmor_unconfined(m: Model) -> Iterator[Hit]:
    profile = m.get("process", "apparmor profile")
    if profile and profile.value == "unconfined":
        yield Hit(profile.src, profile.ops, "AppArmor profile 'unconfined'")


def _privilege_escalation(m: Model) -> Iterator[Hit]:
    if not m.get("process", "no_new_privs"):
        execve = m.get("process", "args")
        yield Hit("/process/noNewPrivileges", execve.ops if execve else (),
                  "setuid binaries and file capabilities raise privileges")


def _root_without_userns(m: Model) -> Iterator[Hit]:
    uid, userns = m.get("process", "uid"), m.get("namespaces", "user")
    if uid and uid.value == 0 and (not userns or userns.value != "new"):
        yield Hit("/process/user/uid", uid.ops, "uid 0 that is the host's uid 0")


def _unknown_security_fields(m: Model) -> Iterator[Hit]:
    """The compiler notes each property the spec does not define; a near miss of a security field is ignored too
    (the spec forbids failing on it), so what its author meant to set is not set."""
    from mrunc.compiler.unknown_properties import NOTE

    for note in m.plan.get("notes", []):
        found = NOTE.match(note)
        if found and found["security"]:
            yield Hit(found["pointer"], (), f"{found['name']!r} is ignored: did you mean {found['known']!r}? "
                                            "the setting it was meant to make is not made")


def _no_limit(resource: str, what: str) -> Callable[[Model], Iterator[Hit]]:
    """Cgroup facts are keyed by their field under /linux/resources (memory/limit), on v1 and v2 alike."""
    def check(m: Model) -> Iterator[Hit]:
        limit = m.get("cgroups", resource)
        if not limit or limit.value in ("max", "-1"):
            yield Hit(f"/linux/resources/{resource}", limit.ops if limit else (), what)

    return check


CONTROLS = (
    Control("caps.all", "baseline", "critical", "all capabilities",
            "root with every capability is the host's root: it can mount, load modules, ptrace, reach devices",
            _all_caps),
    Control("seccomp.none", "baseline", "high", "no seccomp filter",
            "the whole kernel syscall surface is reachable; most container escapes start with a rare syscall",
            _no_seccomp),
    Control("seccomp.allow-default", "baseline", "high", "seccomp allows by default",
            "a filter that allows what it does not list blocks only what its author thought of",
            _seccomp_allows_by_default),
    Control("proc.unmasked", "baseline", "high", "default masked paths not masked",
            "these /proc and /sys files leak host kernel memory, keys and timing (the default procMount masks them)",
            _unmasked),
    Control("kernel-fs.writable", "baseline", "high", "writable /proc/sys or /sys",
            "sysctls and sysfs are not namespaced: writes there change the host's kernel", _writable_kernel_fs),
    *(Control(f"host-ns.{kind}", "baseline", severity, f"host {kind} namespace",
              "sharing a namespace with the host removes the isolation that namespace gives", _host_namespace(kind))
      for kind, (severity, _) in HOST_NAMESPACE_RISK.items()),
    Control("host-path.sensitive", "baseline", "critical", "sensitive host path mounted",
            "a container with the host's root, kernel interfaces, devices, config or engine socket can take the host",
            _host_paths(sensitive=True)),
    Control("mounts.shared-propagation", "baseline", "high", "shared mount propagation",
            "Kubernetes allows Bidirectional mount propagation to privileged containers only: a mount the container "
            "makes appears on the host", _shared_propagation),
    Control("caps.baseline", "baseline", "high", "capabilities beyond the baseline set",
            "these capabilities reach past the container's own resources (admin, raw I/O, modules, tracing)",
            _caps_beyond(BASELINE_CAPS)),
    Control("devices.host-node", "baseline", "high", "host device node",
            "a device node is raw access to host hardware or kernel state, past every file permission", _host_devices),
    Control("devices.cgroup-allow-all", "baseline", "high", "device cgroup allows all",
            "without a deny-all device rule, mknod and open of any device node works", _devices_allow_all),
    Control("sysctl.unsafe", "baseline", "medium", "sysctl outside the safe set",
            "only the Pod Security Standards' safe sysctls are known not to affect other containers", _unsafe_sysctls),
    Control("apparmor.unconfined", "baseline", "high", "AppArmor disabled",
            "'unconfined' turns off the mandatory access control the host applies to containers", _apparmor_unconfined),
    Control("config.unknown-security-field", "baseline", "high", "misspelt security field",
            "a runtime must ignore properties the spec does not define, so a security setting under a near-miss name "
            "(noNewPrivilege) silently leaves the container without it", _unknown_security_fields),
    Control("caps.restricted", "restricted", "medium", "capabilities beyond NET_BIND_SERVICE",
            "restricted containers drop every capability but binding low ports", _caps_beyond(RESTRICTED_CAPS)),
    Control("process.privilege-escalation", "restricted", "medium", "noNewPrivileges is false",
            "without no_new_privs a setuid binary in the image can regain what was dropped", _privilege_escalation),
    Control("process.root-without-userns", "restricted", "high", "runs as root without a user namespace",
            "uid 0 outside a user namespace owns host files that any escape reaches", _root_without_userns),
    Control("host-path.any", "restricted", "medium", "host path mounted",
            "every host path shared with the container widens what a compromise reaches", _host_paths(sensitive=False)),
    Control("devices.host-netdev", "restricted", "medium", "host network interface moved in",
            "a host interface carries the container's traffic past the host's bridges and firewall rules",
            _host_netdevs),
    Control("resources.no-memory-limit", "restricted", "medium", "no memory limit",
            "one container can exhaust the host's memory", _no_limit("memory/limit", "unbounded memory")),
    Control("resources.no-pids-limit", "restricted", "medium", "no pids limit",
            "a fork bomb in one container stops the whole host from starting processes",
            _no_limit("pids/limit", "unbounded processes")),
)
BY_ID = {c.id: c for c in CONTROLS}
