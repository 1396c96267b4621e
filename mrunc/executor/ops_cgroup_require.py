"""cgroup_require: a limit's controller must be where the plan would write its files, checked before anything is made.

The compiler emits it for a controller the host it compiled for lacks (compiler/lower_cgroups.py), so such a plan
fails at its first op and leaves nothing behind: the spec says a runtime that cannot create what the config asks
for MUST fail, and runc refuses the container ("cannot set hugetlb limit: container could not join or create
cgroup"). Here, not in the compiler, so `mrunc compile` still gives a plan to read on any machine."""

import errno
import os

from mrunc.executor.host import CGROUP_ROOT, fingerprint
from mrunc.executor.optable import Context, op


@op("cgroup_require", "runtime", "controller", "dir")
def cgroup_require(ctx: Context, controller: str, dir: str) -> None:
    """Check that cgroup controller `controller` is at `dir`: its own v1 hierarchy, or the cgroup2 root that lists it
    in cgroup.controllers. Fails with ENOENT saying where the controller is instead and what this host allows."""
    if _present(controller, dir):
        return
    have = ", ".join(fingerprint()["controllers"]) or "no controller"
    raise OSError(errno.ENOENT, f"no {controller} controller at {dir}: {_where_else(controller)}; so this limit cannot "
                  f"be applied (runc refuses it too); allowed on this host: limits of {have} (no {controller} limit)")


def _present(controller: str, dir: str) -> bool:
    listed = os.path.join(dir, "cgroup.controllers")
    if os.path.exists(listed):  # a cgroup2 root: the controller must be one it offers
        with open(listed) as f:
            return controller in f.read().split()
    return os.path.exists(os.path.join(dir, "tasks"))  # a v1 hierarchy's root; cgroup2 has no tasks file there


def _where_else(controller: str) -> str:
    """Why the controller is not there, from /proc/cgroups (the kernel's controllers, with the v1 hierarchy each is on,
    0 for none) and the cgroup2 mounts."""
    try:
        state = _proc_cgroups().get(controller)
    except OSError:  # no /proc/cgroups: the refusal stands, only the reason is unknown
        return "the kernel lists no controllers (/proc/cgroups cannot be read)"
    if state is None:
        return f"this kernel has no {controller} controller"
    hierarchy, enabled = state
    if not enabled:
        return f"the kernel has the {controller} controller disabled (cgroup_disable= on its command line)"
    if hierarchy:
        return f"it is on v1 hierarchy {hierarchy}, mounted elsewhere than {CGROUP_ROOT}/{controller}"
    on_v2 = [m for m in _cgroup2_mounts() if _lists(m, controller)]
    if on_v2:
        return f"it is on cgroup2 at {', '.join(on_v2)}, which this host's cgroup v1 layout does not use for limits"
    return "it is mounted on no cgroup hierarchy (no v1 hierarchy has it, and no cgroup2 mount offers it)"


def _proc_cgroups() -> dict[str, tuple[int, bool]]:
    """name -> (v1 hierarchy id, enabled)."""
    out = {}
    with open("/proc/cgroups") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 4 and not line.startswith("#"):
                out[fields[0]] = (int(fields[1]), fields[3] == "1")
    return out


def _cgroup2_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split(" - ", 1)[-1].startswith("cgroup2 ")]


def _lists(mount: str, controller: str) -> bool:
    try:
        with open(os.path.join(mount, "cgroup.controllers")) as f:
            return controller in f.read().split()
    except OSError:
        return False
