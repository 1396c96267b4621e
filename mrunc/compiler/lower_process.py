"""Namespaces (child) and the user process (init): rlimits, ids, capabilities, no_new_privs, execve."""

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import pointer
from mrunc.executor.flags import NAMESPACE_FLAGS

# Fixed order for joins and creation: user first (the others are then owned by / joined with its
# privileges), then the rest as runc's nsexec lists them.
NAMESPACE_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")
NS_FILES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid", "mount": "mnt",
            "cgroup": "cgroup", "time": "time"}  # namespace type -> /proc/PID/ns/FILE


def namespaces(linux: dict) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") or None for ns in linux.get("namespaces", [])}


def lower_namespaces(emit: Emitter, linux: dict) -> None:
    """Join by path first, then a new user namespace (the parent maps ids), then the other new ones."""
    ns = namespaces(linux)
    src = "/linux/namespaces"
    for kind in NAMESPACE_ORDER:
        if ns.get(kind):
            emit("setns", "child", _ns_pointer(linux, kind), type=kind, path=ns[kind])
    if "user" in ns and ns["user"] is None:
        emit("unshare", "child", _ns_pointer(linux, "user"), flags=["CLONE_NEWUSER"])
        for file, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
            lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux[key])
            emit("write_id_map", "runtime", f"/linux/{key}", file=file, content=lines)
        emit("become_ns_root", "child", _ns_pointer(linux, "user"))
    # A new cgroup namespace is not made here: init makes it once it is in its cgroup (order.py, step 1b).
    new = [NAMESPACE_FLAGS[k] for k in NAMESPACE_ORDER if k not in ("user", "cgroup") and k in ns and ns[k] is None]
    if new:
        emit("unshare", "child", src, flags=new)
    if "time" in ns and ns["time"] is None and linux.get("timeOffsets"):
        content = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n"
                          for clock, o in sorted(linux["timeOffsets"].items()))
        emit("set_time_offsets", "child", "/linux/timeOffsets", content=content)


def _ns_pointer(linux: dict, kind: str) -> str:
    index = next(i for i, ns in enumerate(linux["namespaces"]) if ns["type"] == kind)
    return pointer("linux", "namespaces", index)


def lower_limits(emit: Emitter, process: dict) -> None:
    """rlimits and oom_score_adj, set on init before it drops privileges; its children inherit them."""
    for i, limit in enumerate(process.get("rlimits", [])):
        emit("setrlimit", "init", pointer("process", "rlimits", i), type=limit["type"], soft=limit["soft"],
             hard=limit["hard"])
    if "oomScoreAdj" in process:
        emit("oom_score_adj", "init", "/process/oomScoreAdj", value=process["oomScoreAdj"])


def lower_credentials(emit: Emitter, process: dict) -> None:
    """Bounding set drop -> keep-caps -> groups/gid/uid -> capset -> ambient (design.md rule 9)."""
    caps = process.get("capabilities")
    src = "/process/capabilities"
    if caps is not None:
        emit("drop_bounding", "init", src + "/bounding", keep=sorted(set(caps.get("bounding", []))))
        emit("keep_caps", "init", src)
    user = process.get("user", {})
    emit("set_ids", "init", "/process/user", uid=user.get("uid", 0), gid=user.get("gid", 0),
         additional_gids=user.get("additionalGids", []))
    if caps is not None:
        emit("capset", "init", src, effective=sorted(set(caps.get("effective", []))),
             permitted=sorted(set(caps.get("permitted", []))), inheritable=sorted(set(caps.get("inheritable", []))))
        # The kernel raises an ambient capability only if it is permitted and inheritable; runc warns
        # about the others and goes on, so the plan says so in a note.
        allowed = set(caps.get("permitted", [])) & set(caps.get("inheritable", []))
        ambient = sorted(set(caps.get("ambient", [])))
        if set(ambient) - allowed:
            emit.note(src + "/ambient", f"{', '.join(sorted(set(ambient) - allowed))}: not permitted and "
                      "inheritable, so the kernel cannot raise them; not raised")
        if set(ambient) & allowed:
            emit("ambient_raise", "init", src + "/ambient", caps=sorted(set(ambient) & allowed))
