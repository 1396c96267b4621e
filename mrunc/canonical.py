"""A plan's canonical digest: what an operator can approve for a container an engine starts again and again.

podman writes a new config.json at every `podman start`, and the one it writes for the same container differs between
starts: the bind mounts podman adds itself (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/shm,
/run/.containerenv) come out of a Go map, so their order in `mounts` is new each time. The plan follows the config,
so its digest (and its `config_sha256`) differs between two starts of one container: an exact plan digest can
never be approved for it. The canonical digest is the sha256 of the plan with

- `config_sha256` left out (the config's bytes are what varies; the ops are what runs), and
- the mounts put in one order where, and only where, their order cannot change what the container gets: a mount
  keeps its place relative to every mount whose destination is, contains or lies under its own, to every mount
  whose destination goes through a symlink in the rootfs (a link could lead it under, or onto, another one:
  resolved as init resolves it, in the rootfs as it is when the policy judges the container, before anything is
  made), to every bind whose source lies in the rootfs (an earlier mount there would change what it binds) or
  holds it (a recursive bind takes along the rootfs's mounts made so far), sources resolved as the kernel resolves
  them, and to every mount whose options name a path (overlay's lowerdir=...: the kernel looks it up there too).
  The others are placed in order of their ops' text (the smallest ready one first), so any two configs that list
  the same mounts, differing only in the order of those that commute, give one order, and one digest. Each moved
  op's `src` says `/mounts`: which entry of the list it came from is what changes between podman's starts.

Everything else is in the digest as it is in the plan: every op, every argument, the ops' order outside the mounts,
the namespaces joined (podman's bridge network is a new /run/netns path at every start: such a container has a new
canonical digest each time, and cannot be pinned; `--network none` or a fixed namespace can). Stdlib only: `create`
computes it under a policy.
"""

import os
import stat

from mrunc.executor import jsontext
from mrunc.executor.plan import sha256_hex

FORMAT = "mrunc-canonical/1"  # in the digested text: a canonical digest never equals a plan's own


def digest(plan: dict) -> str:
    """`sha256:HEX` of the plan's canonical form."""
    return "sha256:" + sha256_hex(jsontext.dumps(canonical(plan)).encode())


def canonical(plan: dict) -> dict:
    form = {"canonical": FORMAT}
    form.update((key, value) for key, value in plan.items() if key != "config_sha256")
    form["ops"] = _canonical_ops(plan["ops"])
    if isinstance(plan.get("notes"), list):  # a note on a mount names its index, which moves with podman's order
        form["notes"] = sorted(_without_mount_index(str(note)) for note in plan["notes"])
    return form


def _without_mount_index(note: str) -> str:
    """`/mounts/N` -> `/mounts` throughout, as the canonical ops' `src` say it (no `re` on create's path)."""
    head, *rest = note.split("/mounts/")
    return head + "".join("/mounts" + part.lstrip("0123456789") for part in rest)


def _canonical_ops(ops: list[dict]) -> list[dict]:
    """The ops with each run of consecutive mount groups (one group: the ops of one `/mounts/N`) in canonical
    order. A plan whose mount ops are not in such groups is left as it is."""
    groups = _groups(ops)
    if groups is None:
        return ops
    out: list[dict] = []
    run: list[list[dict]] = []
    for group in groups:
        if _mount_index(group[0]["src"]) is None:
            out += _ordered(run) + group
            run = []
        else:
            run.append(group)
    return out + _ordered(run)


def _groups(ops: list[dict]) -> "list[list[dict]] | None":
    """Consecutive ops of one `src` together; None when a mount entry's ops are not all next to each other."""
    groups: list[list[dict]] = []
    seen: set[str] = set()
    for o in ops:
        if groups and o["src"] == groups[-1][0]["src"]:
            groups[-1].append(o)
            continue
        if _mount_index(o["src"]) is not None:
            if o["src"] in seen:
                return None
            seen.add(o["src"])
        groups.append([o])
    return groups


def _mount_index(src: str) -> "int | None":
    number = src.removeprefix("/mounts/")
    return int(number) if number != src and number.isdigit() else None


def _ordered(run: list[list[dict]]) -> list[dict]:
    """The groups of one run, each keeping its place relative to every group it may affect (`_pinned`, `_overlap`), the
    others in order of their text: the smallest ready group first (a topological order that depends only on which
    pairs interact, and in which order those came)."""
    keys = [jsontext.dumps([{k: v for k, v in o.items() if k != "src"} for o in group]) for group in run]
    pinned = [_pinned(group) for group in run]
    before: list[set[int]] = [{i for i in range(j) if pinned[i] or pinned[j] or _overlap(run[i], run[j])}
                              for j in range(len(run))]
    placed: list[int] = []
    while len(placed) < len(run):
        ready = [j for j in range(len(run)) if j not in placed and before[j] <= set(placed)]
        placed.append(min(ready, key=lambda j: keys[j]))
    return [{**o, "src": "/mounts"} for j in placed for o in run[j]]


def _overlap(a: list[dict], b: list[dict]) -> bool:
    """Whether a destination of one group is, contains or lies under one of the other's."""
    return any(_nested(x, y) for x in _targets(a) for y in _targets(b))


def _targets(group: list[dict]) -> list[str]:
    return [o["args"]["target"] for o in group]


def _nested(x: str, y: str) -> bool:
    x, y = x.rstrip("/") + "/", y.rstrip("/") + "/"
    return x.startswith(y) or y.startswith(x)


def _pinned(group: list[dict]) -> bool:
    """A group whose place is kept against every other: not a plain mount into the rootfs, a destination that is not
    a clean absolute path or goes through a symlink there, a bind from inside the rootfs or of a directory holding it,
    or options that name a path."""
    for o in group:
        args = o["args"]
        root, target = args.get("root"), args.get("target")
        if o["op"] not in ("mount", "remount", "tmpfs_copyup") or not root or not isinstance(target, str):
            return True
        if not target.startswith("/") or os.path.normpath(target) != target.rstrip("/") or target.startswith("//"):
            return True
        source = args.get("source")
        if isinstance(source, str) and source.startswith("/") and _nested(os.path.realpath(source),
                                                                          os.path.realpath(root)):
            return True
        if "/" in (args.get("data") or ""):
            return True
        if _through_symlink(root, target):
            return True
    return False


def _through_symlink(root: str, target: str) -> bool:
    """Whether a part of `target` that exists in the rootfs now is a symlink (what is missing is made, never a
    link). A part that cannot be looked at counts as one."""
    path = root.rstrip("/")
    for part in target.strip("/").split("/"):
        path += "/" + part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        except OSError:
            return True
        if stat.S_ISLNK(mode):
            return True
    return False
