"""Freeze, thaw and kill every process of a container through its cgroup, on v1 or v2 (stdlib only).

For the lifecycle commands (pause, resume, kill --all, delete). The cgroup directories are the plan's:
`container_cgroups(plan)` reads them from the op that joins them, so these do what the plan says
and no more.
  v2: cgroup.freeze (1/0; done when cgroup.events says 'frozen 1'), cgroup.kill for SIGKILL (one write kills
      the whole subtree, atomically, so no process forks away from it).
  v1, other signals, or a v2 kernel without cgroup.kill: freeze, signal each pid of the cgroup trees, thaw.
"""

import _signal as signal  # `signal` wraps it in enums: ms of every kill and delete
import errno
import os
import time

POLL = 0.005
GONE = (errno.ENOENT, errno.ENODEV)  # mrunc removed the cgroup once init was reaped (ENODEV: as we read it)


def container_cgroups(plan: dict) -> list[str]:
    """The cgroup dirs of a create/run plan (cgroup_open_tasks on v1, cgroup_attach on v2) or an exec plan."""
    return next(o["args"]["dirs"] for o in plan["ops"] if o["op"] in ("cgroup_open_tasks", "cgroup_attach",
                                                                      "cgroup_enter"))


def _unified(dirs: list[str]) -> str | None:
    return next((d for d in dirs if os.path.exists(os.path.join(d, "cgroup.freeze"))), None)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _wait(done, what: str, timeout: float) -> None:
    """Poll `done` from 0.25 ms apart, doubling up to POLL: the kernel is mostly done within the first ms."""
    deadline = time.monotonic() + timeout
    pause = 0.00025
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout}s")
        time.sleep(pause)
        pause = min(pause * 2, POLL)


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


def signal_all(dirs: list[str], sig: int, timeout: float = 5) -> str:
    """Send `sig` to every process of the container (kill --all); returns how, for the debug log.
    SIGKILL on v2 is one write to cgroup.kill. Anything else, or a kernel without cgroup.kill (before 5.14),
    or v1: freeze, signal each pid, thaw, so nothing forks away in between (as runc does)."""
    unified = _unified(dirs)
    if sig == signal.SIGKILL and unified and os.path.exists(os.path.join(unified, "cgroup.kill")):
        _write(os.path.join(unified, "cgroup.kill"), "1")
        return "cgroup.kill"
    return signal_each(dirs, sig, timeout)


def signal_each(dirs: list[str], sig: int, timeout: float = 5) -> str:
    """Freeze the container (if it has a freezer), signal every pid of its cgroup trees, thaw: a killed process
    dies as it thaws. Like runc, thaws even a container that was paused before."""
    freezer = _freezer_file(dirs)
    if freezer:
        set_frozen(dirs, True, timeout)
    try:
        for pid in tree_pids(dirs):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if freezer:
            _thaw(*freezer)
    return f"freeze ({freezer[0]}), signal each pid, thaw" if freezer else "signal each pid (no freezer)"


def kill_all(dirs: list[str], timeout: float = 5) -> str:
    """SIGKILL every process of the container; returns (how) once its cgroups are empty.

    Only the cgroups that exist count: a create killed among its cgroup_mkdir ops made some of them, and no
    process can be in one never made."""
    dirs = [d for d in dirs if os.path.isdir(d)]
    if not dirs:
        return "no cgroup to kill in (none was made)"
    if not tree_pids(dirs):  # a stopped container's, as delete mostly finds it: nothing to freeze, signal or wait for
        return "no process left in its cgroups"
    how = signal_all(dirs, signal.SIGKILL, timeout)
    unified = _unified(dirs)
    if unified:
        _wait(lambda: _unpopulated(os.path.join(unified, "cgroup.events")), "kill", timeout)
    else:
        _wait(lambda: not tree_pids(dirs), "kill", timeout)
    return how


def tree_pids(dirs: list[str]) -> list[int]:
    """Every pid in the container's cgroups and the cgroups below them (a container may make its own)."""
    pids: set[int] = set()
    for top in dirs:
        pids.update(_pids([os.path.join(d, "cgroup.procs") for d, _, _ in os.walk(top)]))
    return sorted(pids)


def _freezer_file(dirs: list[str]) -> tuple[str, str] | None:
    """(freeze file, its thawed value): v2's cgroup.freeze or v1's freezer.state; None if the plan has neither."""
    unified = _unified(dirs)
    if unified:
        return os.path.join(unified, "cgroup.freeze"), "0"
    freezer = next((d for d in dirs if "/freezer/" in d), None)
    return (os.path.join(freezer, "freezer.state"), "THAWED") if freezer else None


def _thaw(path: str, value: str) -> None:
    """Thaw without waiting: the killed die as they thaw, and mrunc may remove the cgroup once init is reaped."""
    try:
        _write(path, value)
    except OSError as e:
        if e.errno not in GONE:
            raise


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
