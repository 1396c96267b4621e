"""Reading a container's state.json and plan.json as untrusted input (issue 18): after a crash, a full disk, a hand
edit, or in a state root shared with another runtime, either may be missing, cut short, not JSON, a symlink, another
runtime's, or JSON of the wrong shape. Each problem is one line naming what is wrong; nothing here follows a
symlink, and a cgroup path is only accepted if it is a cgroup below a hierarchy's root (delete kills what is in it).

Standard library only, no `json` (jsontext: the C scanner) and no op table: `state` and `start` are on engines'
hot paths (tests/test_launcher.py). The plan is checked for what the lifecycle commands read of it; `exec ID`, which
compiles against it, runs the executor's full structure check as well.
"""

import errno
import os
import stat

from mrunc.executor.jsontext import loads

CGROUP_ROOT = "/sys/fs/cgroup/"
MAX_FILE_BYTES = 64 << 20  # far above any plan (podman's: ~100 KiB); a bigger file is not mrunc's
MAX_PID = 1 << 22  # the kernel's PID_MAX_LIMIT
# What mrunc writes (commands/lifecycle.py) and its readers rely on: key -> allowed types.
STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "ociVersion": (str,), "id": (str,), "pid": (int,), "bundle": (str,), "rootfs": (str,), "created": (str,),
    "owner": (str,), "annotations": (dict,), "cgroups": (list,)}
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "init_start_time": (int, type(None)), "cgroup_parents_made": (list,),
    "rootfs_mount_id": (int,), "resources": (dict,)}
# Keys of runc's state.json (libcontainer State): how a foreign file in a shared root is told apart.
RUNC_KEYS = ("init_process_pid", "init_process_start", "cgroup_paths", "namespace_paths", "config")


FOREIGN = "written by another runtime"


class BadFile(Exception):
    """A state dir's file that cannot be used; str() says what is wrong with it (one line)."""


def read_json(path: str) -> object:
    """The JSON in `path`: FileNotFoundError if it is missing, BadFile for anything else that is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # NONBLOCK: a fifo there
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BadFile(f"a symlink (to {_link(path)}), not mrunc's file; not following it") from None
        raise BadFile(f"cannot read it: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BadFile("not a regular file")
        data = _read_all(fd)
    except OSError as e:
        raise BadFile(f"cannot read it: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise BadFile(f"larger than {MAX_FILE_BYTES >> 20} MiB: not mrunc's")
    if not data.strip():
        raise BadFile("empty (cut short when it was written?)")
    try:
        return loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        reason = str(e).replace("\n", " ")[:200]
        raise BadFile(f"not valid JSON (cut short or edited by hand?): {reason}") from None


def _read_all(fd: int) -> bytes:
    chunks, size = [], 0
    while size <= MAX_FILE_BYTES and (chunk := os.read(fd, 1 << 20)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _link(path: str) -> str:
    try:
        return repr(os.readlink(path))
    except OSError:
        return "?"


def state_problem(state: object, container_id: str) -> str | None:
    """What makes `state` unusable as container `container_id`'s state.json, or None."""
    if not isinstance(state, dict):
        return f"not a JSON object but {_kind(state)}"
    if "bundle" not in state and any(key in state for key in RUNC_KEYS):
        found = ", ".join(key for key in RUNC_KEYS if key in state)
        return f"{FOREIGN} (runc's keys: {found}), not by mrunc"
    for fields, required in ((STATE_FIELDS, True), (OPTIONAL_FIELDS, False)):
        for key, types in fields.items():
            if key not in state:
                if required:
                    return f"no {key!r}: not mrunc's state, or edited by hand"
                continue
            if not isinstance(state[key], types) or isinstance(state[key], bool):
                return f"{key!r} is {_kind(state[key])}; expected {' or '.join(_name(t) for t in types)}"
    return _value_problem(state, container_id)


def _value_problem(state: dict, container_id: str) -> str | None:
    if state["id"] != container_id:
        return f"its id is {state['id'][:100]!r}, but its directory is {container_id!r}"
    if not 0 <= state["pid"] <= MAX_PID:
        return f"'pid' is {state['pid']}; allowed: 0 to {MAX_PID}"
    if state.get("status", "creating") != "creating":
        return f"'status' is {state['status'][:40]!r}; mrunc stores only 'creating' (the rest is derived)"
    started = state.get("init_start_time")
    if "status" not in state and (state["pid"] == 0 or not isinstance(started, int) or started < 0):
        # without its start time, a reused pid would pass for init: kill and delete would signal a stranger
        return "created, but without init's pid and start time ('pid', 'init_start_time')"
    for key in ("cgroups", "cgroup_parents_made"):
        for i, path in enumerate(state.get(key, [])):
            if problem := cgroup_path_problem(path):
                return f"'{key}'[{i}]: {problem}"
    return None


def cgroup_path_problem(path: object) -> str | None:
    """Why `path` cannot be one of a container's cgroups, or None. Never a hierarchy's root (a mount point: killing
    what is in it would kill the host), never outside /sys/fs/cgroup, never through `..`. (Only /sys/fs/cgroup's own
    v1 links, cpu -> cpu,cpuacct say, lead anywhere from there, and they lead to hierarchy roots.)"""
    if not isinstance(path, str):
        return f"{_kind(path)}, not a path"
    if not path.startswith(CGROUP_ROOT) or _clean(path) != path:
        return f"{path[:200]!r} is not a path under {CGROUP_ROOT}"
    try:  # a hierarchy's root is a mount point: on another filesystem than its parent (through the v1 links too)
        at_root = os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:  # missing: nothing can be in it
        return None
    if at_root:
        return f"{path[:200]!r} is the root of a cgroup hierarchy, not a container's cgroup"
    return None


def plan_problem(plan: object) -> str | None:
    """What makes `plan` unusable as the plan a container was created with, or None: its ops' shape (what delete,
    start and exec read of them) and the cgroup paths delete may kill in and remove."""
    if not isinstance(plan, dict):
        return f"not a JSON object but {_kind(plan)}"
    if not isinstance(plan.get("ops"), list) or not plan["ops"]:
        return "'ops' is not a non-empty list: not mrunc's plan, or edited by hand"
    for key in ("ops", "poststart", "poststop"):
        ops = plan.get(key, [])
        if not isinstance(ops, list):
            return f"{key!r} is {_kind(ops)}; expected a list of ops"
        for i, o in enumerate(ops):
            if problem := _op_problem(o, key):
                return f"/{key}/{i}: {problem}"
    return None


def _op_problem(o: object, key: str) -> str | None:
    if not isinstance(o, dict) or not isinstance(o.get("op"), str) or not isinstance(o.get("args"), dict):
        return "not an op (an object with a string 'op' and an object 'args')"
    if key != "ops" and (o["op"] != "hook" or o.get("proc") != "runtime"):
        return f"{key} holds only hooks run by runtime, not {o['op'][:40]!r}"
    if o["op"] in ("cgroup_mkdir", "cgroup_open_tasks", "cgroup_attach", "cgroup_enter"):
        paths = o["args"].get("dirs", [o["args"].get("dir")])
        if not isinstance(paths, list):
            return f"args/dirs is {_kind(paths)}; expected a list of cgroup paths"
        for path in paths:
            if problem := cgroup_path_problem(path):
                return f"args: {problem}"
    return None


def _clean(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return path if ".." not in parts and path == "/" + "/".join(parts) else ""


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", type(None): "null"}[kind]
