"""`mrunc exec ID`: compile one process into a plan of its own that joins a running container.

What the container already fixed (its init pid, cgroups, namespaces, seccomp filter) is read from the plan
it was created with; the process comes from `--process FILE` or from the container's process with the
command line's overrides. No jsonschema here: the process is checked by hand, so exec stays stdlib-only.
"""

import copy
import json

from mrunc.compiler import lower_procattrs, order
from mrunc.compiler.checks import check_rlimit, check_user_ids
from mrunc.compiler.errors import ConfigError, pointer
from mrunc.executor.cgroup_control import container_cgroups
from mrunc.executor.flags import CAPABILITIES, NAMESPACE_FLAGS, RLIMITS
from mrunc.executor.host import fingerprint

CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
NAMESPACE_TYPES = {flag: kind for kind, flag in NAMESPACE_FLAGS.items()}


def compile_exec(process: dict, state: dict, container_plan: dict, console_socket: str | None = None,
                 pid_file: str | None = None, preserve_fds: int = 0, detach: bool = False) -> dict:
    """The exec plan. Raises ConfigError (pointer relative to the process document) on a bad process."""
    check_process(process)
    target = exec_target(state, container_plan)
    if "capabilities" not in process:  # as runc: a process without its own gets the container's
        process = {**process, "capabilities": target["capabilities"]}
    emit = order.lower_exec(process, target, console_socket, pid_file, preserve_fds, detach)
    host = fingerprint()
    if target.get("seccomp"):  # rule 8, for the container's filter: the process may differ in noNewPrivileges
        from mrunc.compiler.seccomp_check import refuse_denied

        emit.notes += refuse_denied(emit.ops, host["arch"], None, "/container/seccomp")
    note = f"/container: exec in container {state['id']!r}, init pid {target['pid']}"
    return emit.plan(json.dumps(process, sort_keys=True).encode(), state.get("bundle", ""), host, [note])


def exec_target(state: dict, plan: dict) -> dict:
    """What the exec joins, read from the ops that built the container."""
    namespaces: set[str] = set()
    args = {o["op"]: o["args"] for o in reversed(plan["ops"])}  # the first of each op
    for o in plan["ops"]:
        if o["op"] == "setns":
            namespaces.add(o["args"]["type"])
        elif o["op"] == "unshare":
            namespaces.update(NAMESPACE_TYPES[flag] for flag in o["args"]["flags"])
    capabilities = {}
    if "capset" in args:
        capabilities = {kind: args["capset"][kind] for kind in ("effective", "permitted", "inheritable")}
        capabilities["bounding"] = args["drop_bounding"]["keep"]
        capabilities["ambient"] = args.get("ambient_raise", {}).get("caps", [])
    return {"pid": state["pid"], "cgroups": container_cgroups(plan), "cgroup": plan["host"]["cgroup"],
            "namespaces": sorted(namespaces), "rootfs": state.get("rootfs", ""), "chrooted": "chroot" in args,
            "seccomp": args.get("seccomp_load"),
            "capabilities": capabilities}


def process_from_args(base: dict, args: list[str], tty: bool, cwd: str | None, env: list[str],
                      user: str | None) -> dict:
    """runc exec without --process: the container's process with our args, tty, cwd, extra env and user."""
    process = copy.deepcopy(base)
    process.update(args=args, terminal=tty)
    process.pop("consoleSize", None)
    if cwd:
        process["cwd"] = cwd
    process["env"] = process.get("env", []) + env
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or gid and not gid.isdigit():
            raise ConfigError("/user", f"--user {user!r}; allowed: UID or UID:GID, in numbers")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    return process


def check_process(process: object) -> None:
    """The checks the schema would make, by hand; each error names the field."""
    if not isinstance(process, dict):
        raise ConfigError("/", "expected a JSON object (a runtime-spec process)")
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ConfigError("/args", f"got {json.dumps(args)}; allowed: a non-empty list of strings")
    for i, entry in enumerate(_strings(process, "env")):
        if problem := env_problem(entry):
            raise ConfigError(pointer("env", i), f"got {json.dumps(entry)}: {problem}; allowed: {ENV_ALLOWED}")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError("/cwd", f"got {json.dumps(cwd)}; allowed: an absolute path")
    _check_user(process.get("user", {}))
    check_user_ids(process.get("user", {}), "/user")
    for kind in CAP_SETS:
        for i, name in enumerate(_strings(process.get("capabilities", {}), kind, "/capabilities")):
            if name not in CAPABILITIES:
                raise ConfigError(pointer("capabilities", kind, i), f"unknown capability {name!r}")
    rlimits = process.get("rlimits", [])
    if not isinstance(rlimits, list):
        raise ConfigError("/rlimits", f"got {json.dumps(rlimits)}; allowed: a list of rlimits")
    for i, limit in enumerate(rlimits):
        if not isinstance(limit, dict) or not isinstance(limit.get("type"), str) or limit["type"] not in RLIMITS:
            raise ConfigError(pointer("rlimits", i), f"got {json.dumps(limit)}; allowed: type one of "
                              f"{', '.join(RLIMITS)}, with soft and hard")
        _numbers(limit, ("soft", "hard"), pointer("rlimits", i), required=True)
        check_rlimit(limit, pointer("rlimits", i))
    for key in ("apparmorProfile", "selinuxLabel"):
        if not isinstance(process.get(key, ""), str):
            raise ConfigError(f"/{key}", f"got {json.dumps(process[key])}; allowed: a string")
    adj = process.get("oomScoreAdj", 0)
    if not isinstance(adj, int) or isinstance(adj, bool) or not -1000 <= adj <= 1000:
        raise ConfigError("/oomScoreAdj", f"got {json.dumps(adj)}; allowed: a number from -1000 to 1000")
    for key in ("terminal", "noNewPrivileges"):
        if not isinstance(process.get(key, False), bool):
            raise ConfigError(f"/{key}", f"got {json.dumps(process[key])}; allowed: true or false")
    if "consoleSize" in process:
        _numbers(process["consoleSize"], ("height", "width"), "/consoleSize", required=True)
    lower_procattrs.check_process(process, "")


def _check_user(user: object) -> None:
    if not isinstance(user, dict):
        raise ConfigError("/user", f"got {json.dumps(user)}; allowed: an object with uid, gid")
    _numbers(user, ("uid", "gid", "umask"), "/user", required=False)
    gids = user.get("additionalGids", [])
    if not isinstance(gids, list) or not all(type(g) is int and g >= 0 for g in gids):  # not bool, an int to Python
        raise ConfigError("/user/additionalGids", f"got {json.dumps(gids)}; allowed: a list of group ids")


ENV_ALLOWED = "NAME=VALUE, NAME not empty (VALUE may be)"


def env_problem(entry: str) -> str | None:
    """What runc's exec refuses in an environment entry (libcontainer's prepareEnv), or None: the config schema's
    Env pattern (^[^=]+=) for a process that is not in config.json."""
    if "=" not in entry:
        return "invalid environment variable: missing '='"
    if entry.startswith("="):
        return "invalid environment variable: the name is empty"
    return None


def _strings(parent: object, key: str, where: str = "") -> list[str]:
    value = parent.get(key, []) if isinstance(parent, dict) else None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}/{key}", f"got {json.dumps(value)}; allowed: a list of strings")
    return value


def _numbers(parent: object, keys: tuple[str, ...], where: str, required: bool) -> None:
    if not isinstance(parent, dict):
        raise ConfigError(where, f"got {json.dumps(parent)}; allowed: an object with {', '.join(keys)}")
    for key in keys:
        if key not in parent and not required:
            continue
        value = parent.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}/{key}", f"got {json.dumps(value)}; allowed: a number, 0 or more")
