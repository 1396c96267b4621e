"""Semantic checks the schema cannot express. Each names the field, what is wrong and what is allowed."""

from mrunc.compiler import lower_network, lower_procattrs
from mrunc.compiler.errors import ConfigError, pointer
from mrunc.executor.flags import CAPABILITIES, MAX_ID, MAX_RLIMIT, RLIMITS

# Known to the runtime-spec, not honoured by mrunc: rejected by name rather than ignored.
UNSUPPORTED = {
    ("linux", "intelRdt"): "Intel RDT is not supported",
}

CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

# sysctl prefixes and the namespace that makes them safe to set (as runc validates).
NAMESPACED_SYSCTLS = (
    ("kernel.msgmax", "ipc"), ("kernel.msgmnb", "ipc"), ("kernel.msgmni", "ipc"), ("kernel.sem", "ipc"),
    ("kernel.shmall", "ipc"), ("kernel.shmmax", "ipc"), ("kernel.shmmni", "ipc"),
    ("kernel.shm_rmid_forced", "ipc"), ("fs.mqueue.", "ipc"), ("net.", "network"),
    ("kernel.hostname", "uts"), ("kernel.domainname", "uts"),
)


def check(config: dict) -> None:
    for (section, key), why in UNSUPPORTED.items():
        if key in config.get(section, {}):
            raise ConfigError(pointer(section, key), f"{why} by mrunc; remove it")
    linux = config.get("linux", {})
    namespaces = _check_namespaces(linux)
    _check_process(config.get("process"))
    _check_mounts(config)
    _check_ids(linux, namespaces)
    _check_sysctl(linux, namespaces)
    lower_network.check(linux, namespaces, startable="process" in config)
    lower_procattrs.check(config)
    if "hostname" in config and config["hostname"] and "uts" not in namespaces:
        raise ConfigError("/hostname", "setting a hostname needs a new uts namespace in /linux/namespaces")
    if "timeOffsets" in linux and namespaces.get("time", "x") is not None:
        raise ConfigError("/linux/timeOffsets", "needs a new (not joined) time namespace in /linux/namespaces")
    seccomp = linux.get("seccomp", {})
    actions = [seccomp.get("defaultAction")] + [r["action"] for r in seccomp.get("syscalls", [])]
    if "listenerPath" in seccomp or "SCMP_ACT_NOTIFY" in actions:
        raise ConfigError("/linux/seccomp",
                          "seccomp user notification (SCMP_ACT_NOTIFY, listenerPath) is not supported")


def _check_namespaces(linux: dict) -> dict[str, str | None]:
    """Namespace type -> path (None: create a new one). Duplicates are an error."""
    found: dict[str, str | None] = {}
    for i, ns in enumerate(linux.get("namespaces", [])):
        if ns["type"] in found:
            raise ConfigError(pointer("linux", "namespaces", i, "type"),
                              f"namespace {ns['type']!r} is listed twice; each type may appear once")
        found[ns["type"]] = ns.get("path") or None
    return found


def check_user_ids(user: dict, where: str) -> None:
    """Ids above MAX_ID are refused, as runc does (also for `mrunc exec`'s process)."""
    ids = {"uid": user.get("uid", 0), "gid": user.get("gid", 0)}
    ids.update((f"additionalGids/{i}", g) for i, g in enumerate(user.get("additionalGids", [])))
    for key, value in ids.items():
        if value > MAX_ID:
            raise ConfigError(f"{where}/{key}", f"got {value}; allowed: 0 to {MAX_ID} (as runc; 4294967295 is -1, "
                              "which setresuid takes as 'unchanged': the process would stay root)")


def check_rlimit(limit: dict, where: str) -> None:
    """Each limit up to RLIM_INFINITY (the schema says so for a config; exec's process is checked by hand), soft
    up to hard."""
    for key in ("hard", "soft"):
        if limit[key] > MAX_RLIMIT:
            raise ConfigError(f"{where}/{key}", f"got {limit[key]}; allowed: up to {MAX_RLIMIT} (unlimited)")
    if limit["soft"] > limit["hard"]:
        raise ConfigError(where + "/soft", f"soft limit {limit['soft']} is above hard limit {limit['hard']}")


def _check_process(process: dict | None) -> None:
    if process is None:  # config.md: REQUIRED for start only; the plan says so and exec, run, create refuse it
        return
    if not process.get("args"):
        raise ConfigError("/process/args", "missing or empty; allowed: at least the program to run")
    check_user_ids(process.get("user", {}), "/process/user")
    caps = process.get("capabilities", {})
    for kind in CAPABILITY_SETS:  # other keys are unknown to the spec, so ignored
        for i, name in enumerate(caps.get(kind, [])):
            if name not in CAPABILITIES:
                raise ConfigError(pointer("process", "capabilities", kind, i),
                                  f"unknown capability {name!r}; allowed: {', '.join(CAPABILITIES)}")
    seen = set()
    for i, limit in enumerate(process.get("rlimits", [])):
        where = pointer("process", "rlimits", i)
        if limit["type"] not in RLIMITS:
            raise ConfigError(where + "/type", f"unknown rlimit {limit['type']!r}; allowed: {', '.join(RLIMITS)}")
        if limit["type"] in seen:
            raise ConfigError(where + "/type", f"{limit['type']} is set twice; each rlimit may appear once")
        seen.add(limit["type"])
        check_rlimit(limit, where)


def _check_mounts(config: dict) -> None:
    for i, m in enumerate(config.get("mounts", [])):
        dest = m["destination"]
        if not dest.startswith("/"):
            raise ConfigError(pointer("mounts", i, "destination"),
                              f"got {dest!r}; allowed: an absolute path inside the container")
        if ".." in dest.split("/"):
            raise ConfigError(pointer("mounts", i, "destination"), f"got {dest!r}; allowed: a path without '..'")


def _check_ids(linux: dict, namespaces: dict) -> None:
    maps = [k for k in ("uidMappings", "gidMappings") if linux.get(k)]
    if maps and "user" not in namespaces:
        raise ConfigError(pointer("linux", maps[0]), "id mappings need a user namespace in /linux/namespaces")
    if "user" in namespaces and namespaces["user"] is None and len(maps) != 2:
        raise ConfigError("/linux/uidMappings", "a new user namespace needs both uidMappings and gidMappings")
    if "user" in namespaces and namespaces["user"] is not None and maps:
        raise ConfigError(pointer("linux", maps[0]), "a joined user namespace already has its mappings")


def _check_sysctl(linux: dict, namespaces: dict) -> None:
    for key in linux.get("sysctl", {}):
        where = pointer("linux", "sysctl", key)
        ns = next((ns for prefix, ns in NAMESPACED_SYSCTLS if key == prefix or
                   (prefix.endswith(".") and key.startswith(prefix))), None)
        if ns is None:
            raise ConfigError(where, "not a namespaced sysctl; setting it would change the host. Allowed: "
                              "kernel.{msg*,sem,shm*}, fs.mqueue.*, net.*, kernel.hostname/domainname")
        if ns not in namespaces:
            raise ConfigError(where, f"needs a {ns} namespace in /linux/namespaces")
