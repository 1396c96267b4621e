"""Freeze, thaw and kill every process of a container through its cgroup, on v1 or v2 (stdlib only).

For the lifecycle commands (pause, resume, kill --all, delete). The cgroup directories are the plan's:
`container_cgroups(plan)` reads them from its cgroup_enter op, so these do what the plan says and no more.
  v2: cgroup.freeze (1/0; done when cgroup.events says 'frozen 1'), cgroup.kill (one write kills the whole
      subtree, atomically, so no process forks away from it).
  v1: the freezer controller's freezer.state (FROZEN/THAWED); v1 has no cgroup.kill, so freeze, SIGKILL
      each pid in cgroup.procs, thaw.
"""

import errno
import os
import signal
import time

POLL = 0.005
GONE = (errno.ENOENT, errno.ENODEV)  # mrunc removed the cgroup once init was reaped (ENODEV: as we read it)


def container_cgroups(plan: dict) -> list[str]:
    return next(o["args"]["dirs"] for o in plan["ops"] if o["op"] == "cgroup_enter")


def _unified(dirs: list[str]) -> str | None:
    return next((d for d in dirs if os.path.exists(os.path.join(d, "cgroup.freeze"))), None)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _wait(done, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout}s")
        time.sleep(POLL)


def set_frozen(dirs: list[str], frozen: bool, timeout: float = 5) -> None:
    """Freeze (pause) or thaw (resume) the container; returns once the kernel says it is done."""
    unified = _unified(dirs)
    if unified:
        _write(os.path.join(unified, "cgroup.freeze"), "1" if frozen else "0")
        want = f"frozen {int(frozen)}"
        _wait(lambda: want in _read(os.path.join(unified, "cgroup.events")).splitlines(), want, timeout)
        return
    freezer = next((d for d in dirs if "/freezer/" in d), None)
    if freezer is None:
        raise FileNotFoundError(2, "no freezer cgroup: the container's plan has none", str(dirs))
    state = os.path.join(freezer, "freezer.state")
    want = "FROZEN" if frozen else "THAWED"
    _write(state, want)
    _wait(lambda: _read(state).strip() == want, want, timeout)


def kill_all(dirs: list[str], timeout: float = 5) -> None:
    """SIGKILL every process of the container; returns once its cgroups are empty.

    Only the cgroups that exist count: a create killed among its cgroup_mkdir ops made some of them, and no
    process can be in one never made."""
    dirs = [d for d in dirs if os.path.isdir(d)]
    if not dirs:
        return
    unified = _unified(dirs)
    if unified and os.path.exists(os.path.join(unified, "cgroup.kill")):
        _write(os.path.join(unified, "cgroup.kill"), "1")
        _wait(lambda: _unpopulated(os.path.join(unified, "cgroup.events")), "kill", timeout)
        return
    # v1: freeze first, so nothing forks between reading cgroup.procs and the kills (as runc does).
    freezer = next((d for d in dirs if "/freezer/" in d), None)
    if freezer:
        set_frozen(dirs, True, timeout)
    procs = [os.path.join(d, "cgroup.procs") for d in dirs]
    for pid in _pids(procs):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if freezer:
        _write(os.path.join(freezer, "freezer.state"), "THAWED")  # the killed die as they thaw
    _wait(lambda: not _pids(procs), "kill", timeout)


def _unpopulated(events: str) -> bool:
    try:
        return "populated 0" in _read(events).splitlines()
    except OSError as e:
        if e.errno in GONE:
            return True
        raise


def _pids(procs: list[str]) -> set[int]:
    """The pids in any of these cgroup.procs files; none in a cgroup that is gone (mrunc removes it when init
    is reaped)."""
    pids: set[int] = set()
    for path in procs:
        try:
            pids.update(int(p) for p in _read(path).split())
        except OSError as e:
            if e.errno not in GONE:
                raise
    return pids
