"""The type of every op argument, in one table: the executor checks each plan against it before anything runs
(plan.check_structure), and schemas/plan.schema.json is generated from it with the op table
(`python -m mrunc.tools.regen_plans`), so the published schema and what exec accepts cannot drift apart.

A type is a small string: `str`, `int`, `uint` (an int >= 0), `bool`, `object`; a kind from TABLES or CHOICES (a
string that must be one of its names: flags, capabilities, rlimits...); `[T]` a list of T; `T?` T or null.
An argument's type is looked up by op and name (BY_OP) and then by name alone (ARGS): arguments of one name
mean the same thing in every op, except where BY_OP says otherwise.
"""

ARGS = {
    "additional_gids": "[uint]", "args": "[str]", "as_process": "[process_step]", "bpf": "str", "caps": "[cap]",
    "content": "str",
    "cols": "uint", "controller": "str", "cpus": "[uint]", "create": "create?", "data": "str?", "deadline": "uint",
    "device": "str", "devices": "[str]", "dir": "str", "dirs": "[str]", "domain": "personality", "effective": "[cap]",
    "env": "[str]?", "file": "str", "files": "[str]", "fstype": "str?", "gid": "uint", "hard": "uint",
    "inheritable": "[cap]", "io_class": "io_class", "keep": "[cap]", "key": "str", "kind": "hook_kind",
    "label": "str", "link": "str", "listing": "[str]", "major": "uint", "mask": "uint", "minor": "uint",
    "mode": "uint", "must": "bool", "name": "str", "nodes": "[uint]", "ns": "str?", "nice": "int", "path": "str",
    "paths": "[str]", "period": "uint",
    "permitted": "[cap]", "pfc": "str", "policy": "sched_policy", "preserve": "uint", "priority": "uint",
    "program": "str", "root": "str?", "rows": "uint", "rules": "[str]", "runtime": "uint", "search_path": "str?",
    "socket": "str", "soft": "uint", "source": "str?", "state": "object", "target": "str", "timeout": "uint?",
    "uid": "uint", "value": "str", "values": "[str]",
}
BY_OP = {
    ("mount", "flags"): "[mount_flag]", ("remount", "flags"): "[mount_flag]", ("tmpfs_copyup", "flags"): "[mount_flag]",
    ("unshare", "flags"): "[clone_flag]",
    ("seccomp_load", "flags"): "[seccomp_flag]", ("sched_setattr", "flags"): "[sched_flag]",
    ("setns", "type"): "namespace", ("setrlimit", "type"): "rlimit", ("mknod", "type"): "node_type",
    ("oom_score_adj", "value"): "int", ("set_mempolicy", "mode"): "mempolicy_mode",
    ("set_mempolicy", "flags"): "[mempolicy_flag]",
}
# Names from a kernel table the executor turns into numbers: (module under mrunc.executor, table). The module is
# imported when a plan has such an argument; the rare ones (ops_procattrs) only by plans that name their ops, which
# load them anyway.
TABLES = {
    "cap": ("flags", "CAPABILITIES"), "mount_flag": ("flags", "MOUNT_FLAGS"), "clone_flag": ("flags", "CLONE_FLAGS"),
    "namespace": ("flags", "NAMESPACE_FLAGS"), "rlimit": ("flags", "RLIMITS"),
    "seccomp_flag": ("libc", "SECCOMP_FILTER_FLAGS"), "sched_policy": ("ops_procattrs", "SCHED_POLICIES"),
    "sched_flag": ("ops_procattrs", "SCHED_FLAGS"), "io_class": ("ops_procattrs", "IOPRIO_CLASSES"),
    "personality": ("ops_procattrs", "PERSONALITIES"), "mempolicy_mode": ("ops_procattrs", "MEMPOLICY_MODES"),
    "mempolicy_flag": ("ops_procattrs", "MEMPOLICY_FLAGS"),
}
CHOICES = {
    "create": ("dir", "file", "auto", "ordinary_dir"), "node_type": ("c", "b", "p", "u"),
    "hook_kind": ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"),
    # The ops that give init the user process's credentials and filter, which a startContainer hook's child runs too
    # (ops_hooks.hook, plan.process_steps_after).
    "process_step": ("seccomp_load", "drop_bounding", "keep_caps", "set_ids", "capset", "ambient_raise",
                     "no_new_privs"),
}


def type_of(op: str, arg: str) -> str | None:
    """The type of `op`'s argument `arg`; None for one the table lacks (tests/test_plan_schema.py keeps it complete)."""
    return BY_OP.get((op, arg)) or ARGS.get(arg)


def names(kind: str) -> tuple[str, ...] | dict[str, int]:
    """The names a kind of TABLES or CHOICES allows."""
    if kind in CHOICES:
        return CHOICES[kind]
    module, table = TABLES[kind]
    return getattr(__import__(f"mrunc.executor.{module}", fromlist=[table]), table)


def problem(kind: str, value: object) -> str | None:
    """Why `value` is not of type `kind`; None when it is. The exec path checks every argument of a plan: a test
    made once per type (_test) first, the explanation only for a value that fails it."""
    test = _TESTS.get(kind) or _TESTS.setdefault(kind, _test(kind))
    return None if test(value) else _explain(kind, value)


_TESTS: dict = {}


def _test(kind: str):  # -> Callable[[object], bool]; no typing import on the exec path
    if kind.endswith("?"):
        inner = _test(kind[:-1])
        return lambda v: v is None or inner(v)
    if kind.startswith("["):
        item = kind[1:-1]
        if item in TABLES or item in CHOICES:
            allowed = frozenset(names(item))
            return lambda v: type(v) is list and all(type(x) is str and x in allowed for x in v)
        inner = _test(item)
        return lambda v: type(v) is list and all(inner(x) for x in v)
    if kind == "uint":
        return lambda v: type(v) is int and v >= 0
    simple = {"str": str, "int": int, "bool": bool, "object": dict}.get(kind)
    if simple is not None:
        return lambda v: type(v) is simple
    allowed = frozenset(names(kind))
    return lambda v: type(v) is str and v in allowed


def _explain(kind: str, value: object) -> str | None:
    if kind.endswith("?"):
        return None if value is None else _explain(kind[:-1], value)
    if kind.startswith("["):
        if not isinstance(value, list):
            return f"expected a list, got {_short(value)}"
        for i, item in enumerate(value):
            if found := _explain(kind[1:-1], item):
                return f"item {i}: {found}"
        return None
    if kind in ("int", "uint"):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected an integer, got {_short(value)}"
        return f"expected an integer >= 0, got {value}" if kind == "uint" and value < 0 else None
    expected = {"str": str, "bool": bool, "object": dict}.get(kind)
    if expected is not None:
        return None if isinstance(value, expected) else f"expected {_article(kind)}, got {_short(value)}"
    if not isinstance(value, str) or value not in names(kind):
        return f"{_short(value)} is not a known {kind.replace('_', ' ')}"
    return None


def _article(kind: str) -> str:
    return {"str": "a string", "bool": "true or false", "object": "an object"}[kind]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
