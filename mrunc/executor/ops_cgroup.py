"""cgroup ops. The compiler decided v1 or v2 and which files; these make dirs, write files and attach the
v2 device program the compiler assembled."""

import os
import time

from mrunc.executor import b64, libc
from mrunc.executor.optable import Context, op, protocol_op


@op("cgroup_mkdir", "runtime", "dir")
def cgroup_mkdir(ctx: Context, dir: str) -> None:
    """Create a cgroup directory and any missing parents; those it made are removed after the container.

    Containers started side by side share parents: one may create a parent we saw missing (not ours to
    remove), or remove one it made just before our mkdir in it (we make it again)."""
    for _ in range(_PARENT_RACE_RETRIES):
        try:
            _mkdirs(ctx, dir)
            return
        except FileNotFoundError:
            continue
    _mkdirs(ctx, dir)


_PARENT_RACE_RETRIES = 20


def _mkdirs(ctx: Context, dir: str) -> None:
    missing = []
    path = dir
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if path == dir:
                raise
            continue
        remove = _remove_cgroup if path == dir else _remove_if_unused
        ctx.undo.append((f"rmdir {path}", lambda p=path, remove=remove: remove(p)))


def _remove_if_unused(path: str) -> None:
    """A parent we created: remove it unless another container's cgroup lives there now."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def _remove_cgroup(path: str) -> None:
    """Kill what is left in the cgroup (a container without its own pid namespace), then rmdir it."""
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            for pid in _procs(path):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
    os.rmdir(path)


def _procs(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except OSError:
        return []


@op("cgroup_copy_parent", "runtime", "dir", "file")
def cgroup_copy_parent(ctx: Context, dir: str, file: str) -> None:
    """Fill an empty v1 cpuset file (and its empty ancestors') from the nearest ancestor that has a value:
    a new cpuset takes no tasks until cpus and mems are set."""
    empty = []
    path = dir
    while not (value := _read(os.path.join(path, file))):
        empty.append(path)
        path = os.path.dirname(path)
    for path in reversed(empty):
        _write(os.path.join(path, file), value)


def _read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode().strip()
    finally:
        os.close(fd)


def _write(path: str, value: str) -> None:
    """One write(2) of the whole value, as the kernel wants a control file written (without open()'s buffered
    file objects: each would cost three more syscalls and a few objects, for a dozen writes at every start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


@op("cgroup_write", "runtime", "dir", "file", "value")
def cgroup_write(ctx: Context, dir: str, file: str, value: str) -> None:
    """Write one cgroup control file."""
    _write(os.path.join(dir, file), value)


@op("cgroup_write_first", "runtime", "dir", "files", "values")
def cgroup_write_first(ctx: Context, dir: str, files: list[str], values: list[str]) -> None:
    """Write the first of `files` the kernel offers (which exists depends on the host, e.g. its I/O scheduler)
    with its value in `values`."""
    for file, value in zip(files, values, strict=True):
        if os.path.exists(os.path.join(dir, file)):
            cgroup_write(ctx, dir, file, value)
            return
    raise FileNotFoundError(2, f"none of {', '.join(files)} exists", dir)


@op("cgroup_attach", "runtime", "dirs")
def cgroup_attach(ctx: Context, dirs: list[str]) -> None:
    """Move init into the cgroup(s) by its pid; runtime does it while init goes on, up to init's cgroup_joined."""
    pid = str(ctx.init_pid)
    for d in dirs:
        _write(os.path.join(d, "cgroup.procs"), pid)


protocol_op("cgroup_joined", "init", "wait until runtime's cgroup_attach has moved init into its cgroup (run.py)")


@op("cgroup_open_tasks", "child", "dirs")
def cgroup_open_tasks(ctx: Context, dirs: list[str]) -> None:
    """Open each v1 cgroup's tasks file, from the host and before any namespace, for init's cgroup_join_self:
    the kernel checks the opener's credentials, so init may write them even from a new user namespace."""
    ctx.cgroup_tasks = [os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC) for d in dirs]


@op("cgroup_join_self", "init")
def cgroup_join_self(ctx: Context) -> None:
    """Move this process into its v1 cgroups: write 0 ("this thread") to each tasks file child opened, then close
    them. init is one thread, so that moves it whole; and a thread moving itself takes no threadgroup lock, so it
    does not wait for the RCU grace period a cgroup.procs write waits for (~0.1 ms here instead of ~8 ms)."""
    for fd in ctx.cgroup_tasks:
        os.write(fd, b"0")
        os.close(fd)
    ctx.cgroup_tasks = []


@op("cgroup_enter", "child", "dirs", "file")
def cgroup_enter(ctx: Context, dirs: list[str], file: str) -> None:
    """Move this process into the cgroup(s) before any namespace is created; its children follow. `file` is
    v1's tasks (one thread moving itself: no threadgroup lock, see cgroup_join_self) or v2's cgroup.procs."""
    for d in dirs:
        _write(os.path.join(d, file), "0")


@op("cgroup_device_filter", "runtime", "dir", "bpf", "rules", "listing")
def cgroup_device_filter(ctx: Context, dir: str, bpf: str, rules: list[str], listing: list[str]) -> None:
    """v2 device rules: load the compiler's BPF_PROG_TYPE_CGROUP_DEVICE program and attach it to the cgroup.
    `rules` (v1's rule state: exceptions checked top down, the first match decides, then the default) and
    `listing` (the instructions) are its readable form."""
    prog = libc.bpf_prog_load_cgroup_device(b64.decode(bpf))
    try:
        cgroup = os.open(dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            libc.bpf_prog_attach_cgroup_device(prog, cgroup)
        finally:
            os.close(cgroup)
    finally:
        os.close(prog)  # the attachment keeps the program; removing the cgroup frees both
