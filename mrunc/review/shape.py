"""The JSON types of the op arguments the review reads. The executor's checks stop at argument names; a plan
edited by hand can still hold `"flags": 1`, and the review must name that, not trip over it."""

from collections.abc import Callable

from mrunc.executor.flags import CAPABILITIES, CLONE_FLAGS, MOUNT_FLAGS


def _of(*types: type) -> tuple[Callable[[object], bool], str]:
    return (lambda v: isinstance(v, types)), " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _list_of(item: type) -> tuple[Callable[[object], bool], str]:
    return (lambda v: isinstance(v, list) and all(isinstance(x, item) for x in v)), f"a list of {item.__name__}"


def _optional(check: tuple[Callable[[object], bool], str]) -> tuple[Callable[[object], bool], str]:
    return (lambda v: v is None or check[0](v)), f"{check[1]} or null"


STR, OPT_STR, INT, STRS = _of(str), _of(str, type(None)), _of(int), _list_of(str)
# By argument name: a name means the same in every op. Arguments not listed are not read by the review.
ARG_TYPES = {
    **dict.fromkeys(("type", "path", "target", "dir", "file", "content", "name", "key", "bpf", "pfc", "link",
                     "device"), STR),
    **dict.fromkeys(("source", "fstype", "data", "root", "create"), OPT_STR),
    **dict.fromkeys(("uid", "gid", "major", "minor", "mode", "soft", "hard", "preserve", "mask"), INT),
    **dict.fromkeys(("flags", "keep", "caps", "effective", "permitted", "inheritable", "args", "dirs", "rules"), STRS),
    "env": _optional(STRS), "must": _of(bool), "value": _of(str, int), "additional_gids": _list_of(int),
}
# Arguments that hold names from a table: (op, argument), or ("", argument) in every op.
NAMES = {("unshare", "flags"): CLONE_FLAGS, ("mount", "flags"): MOUNT_FLAGS, ("remount", "flags"): MOUNT_FLAGS,
         ("tmpfs_copyup", "flags"): MOUNT_FLAGS,
         **{("", kind): CAPABILITIES for kind in ("keep", "caps", "effective", "permitted", "inheritable")}}


def problems(plan: dict) -> list[str]:
    """Sources that are not pointers, arguments of the wrong JSON type, unknown names; each by its pointer."""
    found = []
    for i, o in enumerate(plan["ops"]):
        if not isinstance(o["src"], str) or not o["src"].startswith("/"):
            found.append(f"/ops/{i}/src: expected a JSON pointer, got {o['src']!r:.60}")
        for name, value in o["args"].items():
            valid, wanted = ARG_TYPES.get(name, (lambda v: True, ""))
            table = NAMES.get((o["op"], name), NAMES.get(("", name)))
            if not valid(value):
                found.append(f"/ops/{i}/args/{name}: expected {wanted}, got {value!r:.60}")
            elif table and set(value) - set(table):
                found.append(f"/ops/{i}/args/{name}: unknown names {sorted(set(value) - set(table))}")
    return found
