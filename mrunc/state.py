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


class DamagedState(StateError):
    """The state dir exists, but its state.json or plan.json cannot be used (missing, unreadable, cut short, not
    JSON, another runtime's, edited by hand); the message names the file and what is wrong."""


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
        at a time. Forked processes share the lock: unlock() releases it for all of them. Neither the state dir nor
        the lock is followed if it is a symlink: nothing outside the state root is opened or made."""
        fd = self._open_lock()
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _open_lock(self, create: bool = True) -> int:
        try:
            dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StateError(f"container {self.id!r} does not exist") from None
        except OSError as e:  # ELOOP: a symlink; ENOTDIR: a file
            raise DamagedState(f"container {self.id!r}: {self.dir}: not a state directory ({e.strerror})") from None
        try:
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
            return os.open("lock", flags, 0o600, dir_fd=dir_fd)
        except FileNotFoundError:  # removed since we opened it
            raise StateError(f"container {self.id!r} does not exist") from None
        except OSError as e:
            raise DamagedState(f"container {self.id!r}: {self.path('lock')}: cannot lock it ({e.strerror})") from None
        finally:
            os.close(dir_fd)

    def being_created(self) -> bool:
        """Does a live create hold the lock (it writes state.json under it, then releases it)?"""
        try:
            fd = self._open_lock(create=False)  # no lock file: no create (nor a foreign dir given one)
        except StateError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @staticmethod
    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

    def locked(self) -> "_Locked":
        """`with container.locked() as state`: hold the lock; the stored state (StateError if the container
        does not exist or its state is bad)."""
        return _Locked(self)

    def load(self) -> dict:
        """The stored state. No state dir: the container does not exist; a state dir whose state.json is missing,
        unreadable, not JSON, another runtime's or of the wrong shape: DamagedState saying which and why."""
        from mrunc.state_check import state_problem

        state = self._read("state.json")
        if problem := state_problem(state, self.id):
            raise DamagedState(f"container {self.id!r}: {self.path('state.json')}: {problem}")
        return state  # type: ignore[return-value]

    def plan(self, name: str = "plan.json") -> dict:
        """The plan the container was created with (or `mrunc update`'s in-force.json), checked as load() checks
        the state."""
        from mrunc.state_check import plan_problem

        plan = self._read(name)
        if problem := plan_problem(plan):
            raise DamagedState(f"container {self.id!r}: {self.path(name)}: {problem}")
        return plan  # type: ignore[return-value]

    def _read(self, name: str) -> object:
        from mrunc.state_check import BadFile, read_json

        try:
            return read_json(self.path(name))
        except FileNotFoundError:
            if not os.path.lexists(self.dir):
                raise StateError(f"container {self.id!r} does not exist") from None
            raise DamagedState(f"container {self.id!r}: {self.path(name)}: missing") from None
        except BadFile as e:
            raise DamagedState(f"container {self.id!r}: {self.path(name)}: {e}") from None

    def save(self, state: dict) -> None:
        write_atomic(self.path("state.json"), state_text(state))

    def status(self, state: dict) -> str:
        if state.get("status") == "creating":
            return "creating"
        started = state.get("init_start_time")
        if started is None or not alive(state["pid"], started):  # without its start time, a reused pid is no init
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        return "paused" if is_frozen(state.get("cgroups", [])) else "running"

    def public(self, state: dict) -> dict:
        """What `mrunc state` prints: the runtime-spec state with runc's extra fields."""
        status = self.status(state)
        shown = {**state, "status": status, "pid": 0 if status == "stopped" else state.get("pid", 0)}
        return {k: shown[k] for k in PUBLIC_KEYS if k in shown}

    def remove(self) -> list[str]:
        """Remove the state dir and the files in it (unlink never follows a symlink; a state dir that is a symlink
        goes, not what it names). Returns what could not be removed, and why."""
        if os.path.islink(self.dir):
            os.unlink(self.dir)
            return []
        left = []
        for name in os.listdir(self.dir):
            try:
                os.unlink(self.path(name))
            except IsADirectoryError:
                try:
                    os.rmdir(self.path(name))  # only if empty: mrunc makes no directory here
                except OSError:
                    left.append(f"{self.path(name)} (a directory, not empty: not mrunc's)")
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.dir)
        except OSError as e:
            left.append(f"{self.dir} ({e.strerror})")
        return left


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


def state_text(state: dict) -> str:
    """state.json's text."""
    return jsontext.dumps(state, indent=1) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write to a temp file beside `path`, then rename over it: readers see the old or the new file."""
    os.rename(stage(path, text), path)


def stage(path: str, text: str) -> str:
    """The temp file beside `path` that holds `text`, to be renamed over it; a failed write (a full disk) leaves
    no temp file behind and raises the OSError."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp


def list_entries(root: str) -> list[str]:
    """The names of the directories under root (what may be containers), sorted; none if root is missing (runc
    lists none too). A root that is not a directory, or cannot be read, is a StateError naming it: runc's list
    fails there (exit 1, "readdirent ROOT: not a directory"), it does not answer "no containers"."""
    try:
        with os.scandir(root) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise StateError(f"--root {root}: not a directory; allowed: the directory mrunc keeps its containers' "
                         "state in (or a path not made yet: no containers)") from None
    except OSError as e:
        raise StateError(f"--root {root}: cannot list it: {e.strerror}") from None


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
