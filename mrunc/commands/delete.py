"""`mrunc delete [--force] ID`: remove a stopped (or created) container: its processes, cgroups and state,
then run the poststop hooks. A running or paused one needs --force (SIGKILL first). As runc: delete --force
of an unknown id succeeds."""

import os

from mrunc.commands.args import parse_or_status
from mrunc.commands.common import fail
from mrunc.executor import cgroup_control, ops_lifecycle, procfs
from mrunc.state import Container, StateError


def main(options, args: list[str]) -> int:
    opts = parse_or_status("usage: mrunc delete [--force] ID", args, {"--force": "force", "-f": "force"},
                           required=("id",))
    if isinstance(opts, int):
        return opts
    try:
        container = Container(options.root, opts.id)
    except StateError as e:
        return fail(str(e))
    try:
        with container.locked() as state:
            status = container.status(state)
            if status in ("running", "paused") and not opts.force:
                return fail(f"cannot delete container {opts.id!r} that is not stopped: {status}")
            return _destroy(container, state)
    except StateError as e:
        if os.path.isdir(container.dir) and not os.path.exists(container.path("state.json")):
            container.remove()  # a create that died before it wrote any state
        return 0 if opts.force and "does not exist" in str(e) else fail(str(e))


def _destroy(container: Container, state: dict) -> int:
    """Kill what is left (init, and anything else in the cgroup), remove the cgroups, poststop, state dir."""
    from mrunc import log

    pid, started = state["pid"], state.get("init_start_time")
    try:
        how = cgroup_control.kill_all(state["cgroups"])
    except (OSError, TimeoutError) as e:
        return fail(f"container {container.id!r}: cannot kill its processes: {e}")
    log.debug(f"delete {container.id!r}: killed what was left: {how}")
    if not ops_lifecycle.wait_gone(lambda: procfs.alive(pid, started), 10):
        return fail(f"container {container.id!r}: init {pid} survived SIGKILL")
    plan = container.plan()
    for o in plan["ops"]:
        if o["op"] == "unmount_at_exit" and "rootfs_mount_id" in state:  # mounts in a namespace it shares
            from mrunc.executor import ops_sharedmnt

            try:
                ops_sharedmnt.detach_if_init_root(o["args"]["root"], o["args"]["ns"], state["rootfs_mount_id"])
            except OSError as e:  # say so, and remove the rest: the state would only block a new container's id
                log.warning(f"container {container.id!r}: cannot unmount its rootfs {o['args']['root']}: {e}")
    for o in reversed(plan["ops"]):
        if o["op"] == "cgroup_mkdir":
            _rmdir_cgroup(o["args"]["dir"])
    for parent in state.get("cgroup_parents_made", []):  # deepest first
        try:
            os.rmdir(parent)
        except OSError:
            pass  # another container's cgroup lives there now
    if plan.get("poststop"):
        from mrunc.executor.optable import Context
        from mrunc.executor.run import run_after

        run_after(plan["poststop"], Context(init_pid=pid), warn=log.warning)
    container.remove()
    return 0


def _rmdir_cgroup(path: str) -> None:
    """rmdir a cgroup once its last (killed) process has left it."""
    def gone() -> bool:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY until the last killed process has left
            return False
        return True

    ops_lifecycle.wait_gone(lambda: not gone(), 5)
    if os.path.isdir(path):
        fail(f"cannot remove cgroup {path}: it still holds processes")
