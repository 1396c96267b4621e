"""Container state on the host: one directory per container under the state root (`--root`).

    ROOT/ID/lock        flock'd by every command that changes the container, so they run one at a time
    ROOT/ID/state.json  the runtime-spec state, runc's extras (rootfs, created, owner), init's start time
    ROOT/ID/plan.json   the compiled plan that ran
    ROOT/ID/exec.fifo   from create until start: init blocks on it just before execve (ops_lifecycle.py)

The status is derived each time, as runc derives it: stopped once init is gone (or its pid was reused),
created while exec.fifo exists, paused while the cgroup is frozen, else running. Files are replaced
atomically (temp + rename). Standard library only: start, kill and state are on engines' hot paths, so no
json (re, enum), contextlib or collections either (tests/test_launcher.py).
"""

import fcntl
import os

from mrunc.executor import jsontext
from mrunc.executor.procfs import alive

DEFAULT_ROOT = "/run/mrunc"
# runc's rule (libcontainer validateID): ASCII letters, digits, "_", "+", "-", "." only, not "." or ".."; runc has
# no length limit of its own, but an id is its state dir's name, so past NAME_MAX it fails there ("file name too
# long"): checked here instead, before anything is made. Not \w or a regex: those take any Unicode letter, and
# `$` matches before a trailing newline.
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
ID_MAX_LENGTH = 255  # NAME_MAX
PUBLIC_KEYS = ("ociVersion", "id", "status", "pid", "bundle", "rootfs", "created", "owner", "annotations")


class StateError(Exception):
    """A lifecycle command cannot go on; str() is the message for the user."""


def valid_id(container_id: str) -> bool:
    return (0 < len(container_id) <= ID_MAX_LENGTH and ID_CHARS.issuperset(container_id)
            and container_id not in (".", ".."))


def check_id(container_id: str) -> None:
    if not valid_id(container_id):
        raise StateError(f"invalid container id {container_id[:300]!r}; allowed: 1 to {ID_MAX_LENGTH} ASCII letters, "
                         "digits, '_', '+', '-', '.' (not '.' or '..')")


class Container:
    def __init__(self, root: str, container_id: str) -> None:
        check_id(container_id)
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)
        self.fifo = os.path.join(self.dir, "exec.fifo")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def make_dir(self) -> None:
        """The state dir, for create and run; an existing one means the id is taken."""
        os.makedirs(self.root, 0o700, exist_ok=True)
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise StateError(f"container {self.id!r} already exists") from None

    def lock(self) -> int:
        """Take the container's lock (flock on ROOT/ID/lock) and return its fd; commands on one id run one
        at a time. Forked processes share the lock: unlock() releases it for all of them."""
        try:
            fd = os.open(self.path("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise StateError(f"container {self.id!r} does not exist") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

    def locked(self) -> "_Locked":
        """`with container.locked() as state`: hold the lock; the stored state (StateError if the container
        does not exist)."""
        return _Locked(self)

    def load(self) -> dict:
        """The stored state; a container whose state.json is missing (deleted meanwhile) does not exist."""
        try:
            with open(self.path("state.json"), "rb") as f:
                return jsontext.loads(f.read())
        except FileNotFoundError:
            raise StateError(f"container {self.id!r} does not exist") from None

    def save(self, state: dict) -> None:
        write_atomic(self.path("state.json"), jsontext.dumps(state, indent=1) + "\n")

    def plan(self) -> dict:
        with open(self.path("plan.json"), "rb") as f:
            return jsontext.loads(f.read())

    def status(self, state: dict) -> str:
        if state.get("status") == "creating":
            return "creating"
        if not alive(state.get("pid", 0), state.get("init_start_time")):
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        return "paused" if is_frozen(state.get("cgroups", [])) else "running"

    def public(self, state: dict) -> dict:
        """What `mrunc state` prints: the runtime-spec state with runc's extra fields."""
        status = self.status(state)
        shown = {**state, "status": status, "pid": 0 if status == "stopped" else state.get("pid", 0)}
        return {k: shown[k] for k in PUBLIC_KEYS if k in shown}

    def remove(self) -> None:
        """Remove the state dir and everything in it (it holds only files)."""
        for name in os.listdir(self.dir):
            os.unlink(self.path(name))
        os.rmdir(self.dir)


class _Locked:
    """Container.locked(): a class, not contextlib's decorator (contextlib imports collections and functools)."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.fd = -1

    def __enter__(self) -> dict:
        self.fd = self.container.lock()
        try:
            return self.container.load()
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def write_atomic(path: str, text: str) -> None:
    """Write to a temp file beside `path`, then rename over it: readers see the old or the new file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, "state.json")))


def is_frozen(cgroups: list[str]) -> bool:
    """Is the container's cgroup frozen (v1 freezer.state FROZEN; v2 cgroup.events 'frozen 1')?"""
    for d in cgroups:
        for file, frozen in (("freezer.state", "FROZEN"), ("cgroup.events", "frozen 1")):
            try:
                with open(os.path.join(d, file)) as f:
                    if frozen in f.read().splitlines():
                        return True
            except OSError:
                continue
    return False


def cgroup_procs(cgroups: list[str]) -> list[int]:
    """Every pid in the container's cgroups (the union over v1 hierarchies), sorted."""
    pids: set[int] = set()
    for d in cgroups:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(line) for line in f if line.strip())
        except OSError:
            continue
    return sorted(pids)
