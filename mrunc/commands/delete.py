"""`mrunc delete [--force] ID`: remove a stopped container: its processes, cgroups and state, then run the
poststop hooks. A created, running or paused one needs --force (SIGKILL first): runtime.md, "Delete": deleting a
container that is not stopped MUST generate an error. crun refuses a created one too; runc 1.1 kills it instead.
Engines are unaffected: podman deletes with --force, and containerd kills a created task before it deletes it.
As runc: delete --force of an unknown id succeeds.

A container whose state.json or plan.json is damaged (missing, cut short, not JSON, another runtime's, edited by
hand) is refused without --force; with it, delete removes what it can still identify: the processes in the
cgroups its plan (else its state) records, those cgroups, then the state dir, and says what it could not."""

import os

from mrunc.commands.args import parse_or_status
from mrunc.commands.common import fail
from mrunc.executor import cgroup_control, ops_lifecycle, procfs
from mrunc.state import Container, DamagedState, StateError
from mrunc.state_check import FOREIGN


def main(options, args: list[str]) -> int:
    opts = parse_or_status("usage: mrunc delete [--force] ID", args, {"--force": "force", "-f": "force"},
                           required=("id",))
    if isinstance(opts, int):
        return opts
    try:
        container = Container(options.root, opts.id)
        lock = container.lock()
    except DamagedState as e:
        return _destroy_damaged(container, None, None, [str(e)]) if opts.force else _refuse(e, opts.id)
    except StateError as e:
        return 0 if opts.force and "does not exist" in str(e) else fail(str(e))
    try:
        return _delete_locked(container, opts.force)
    finally:
        os.close(lock)


def _delete_locked(container: Container, force: bool) -> int:
    state, plan, problems = _read(container)
    if not any(os.path.lexists(container.path(name)) for name in ("state.json", "plan.json")):
        # a create that died before it wrote any state: it made nothing but the dir (plan.json comes first)
        container.remove()
        return 0 if force else fail(f"container {container.id!r} does not exist")
    if plan is None and any(FOREIGN in problem for problem in problems):  # runc's, say, in a shared root
        return fail(f"{problems[0]}: delete it with the runtime that made it; nothing removed")
    if problems:
        return _destroy_damaged(container, state, plan, problems) if force else _refuse(problems[0], container.id)
    assert state is not None and plan is not None
    status = container.status(state)
    if status in ("created", "running", "paused") and not force:  # `creating` here is a create that died
        return fail(f"cannot delete container {container.id!r} that is not stopped: {status} "
                    f"(kill it first, or `mrunc delete --force {container.id}`)")
    return _destroy(container, state, plan)


def _read(container: Container) -> tuple[dict | None, dict | None, list[str]]:
    """The state and the plan, each None when damaged (and the problem said); missing state.json and plan.json
    say nothing (a create that died early)."""
    state = plan = None
    problems = []
    try:
        state = container.load()
    except DamagedState as e:
        if os.path.lexists(container.path("state.json")):
            problems.append(str(e))
    try:
        plan = container.plan()
    except DamagedState as e:
        problems.append(str(e))
    if state is None and plan is not None and not problems:
        problems.append(f"container {container.id!r}: {container.path('state.json')}: missing")
    return state, plan, problems


def _refuse(problem: object, container_id: str) -> int:
    return fail(f"{problem}; `mrunc delete --force {container_id}` removes what can still be identified")


def _destroy(container: Container, state: dict, plan: dict) -> int:
    """Kill what is left (init, and anything else in the cgroup), remove the cgroups, poststop, state dir."""
    from mrunc import log

    pid, started = state["pid"], state.get("init_start_time")
    try:
        how = cgroup_control.kill_all(state["cgroups"])
    except (OSError, TimeoutError) as e:
        return fail(f"container {container.id!r}: cannot kill its processes: {e}")
    log.debug(f"delete {container.id!r}: killed what was left: {how}")
    if started is not None and not ops_lifecycle.wait_gone(lambda: procfs.alive(pid, started), 10):
        return fail(f"container {container.id!r}: init {pid} survived SIGKILL")
    _unmount_shared(container, plan, state)
    for path in _remove_cgroups(_made_cgroups(plan), state.get("cgroup_parents_made", [])):
        fail(f"cannot remove cgroup {path}: it still holds processes")
    _poststop(plan, pid)
    left = container.remove()
    return fail(f"container {container.id!r}: could not remove: {', '.join(left)}") if left else 0


def _destroy_damaged(container: Container, state: dict | None, plan: dict | None, problems: list[str]) -> int:
    """delete --force of a damaged container: what the plan (else the state) identifies, then the state dir."""
    from mrunc import log

    for problem in problems:
        log.warning(f"{problem}; removing what can still be identified")
    could_not = []
    if plan is not None:
        cgroups, made = _plan_cgroups(plan), _made_cgroups(plan)
    elif state is not None:
        cgroups = made = state["cgroups"]
    else:
        cgroups = made = []
        could_not.append("find its processes and cgroups (neither plan.json nor state.json is readable): "
                         "look for them by hand")
    try:
        cgroup_control.kill_all(cgroups)
    except (OSError, TimeoutError) as e:
        could_not.append(f"kill its processes: {e}")
    if plan is not None and state is not None:
        _unmount_shared(container, plan, state)
    elif plan is not None and any(o["op"] == "unmount_at_exit" for o in plan["ops"]):
        could_not.append("unmount its rootfs in the mount namespace it shares (state.json has the mount's id)")
    left = _remove_cgroups(made, state.get("cgroup_parents_made", []) if state else [])
    if plan is not None:
        _poststop(plan, state["pid"] if state else 0)
    left += container.remove()
    if left:
        could_not.append(f"remove {', '.join(left)}")
    return fail(f"container {container.id!r}: could not " + "; could not ".join(could_not)) if could_not else 0


def _unmount_shared(container: Container, plan: dict, state: dict) -> None:
    """Detach the rootfs bind init left in a mount namespace the container shares (ops_sharedmnt)."""
    from mrunc import log

    for o in plan["ops"]:
        if o["op"] == "unmount_at_exit" and "rootfs_mount_id" in state:  # mounts in a namespace it shares
            from mrunc.executor import ops_sharedmnt

            try:
                ops_sharedmnt.detach_if_init_root(o["args"]["root"], o["args"]["ns"], state["rootfs_mount_id"])
            except (OSError, KeyError, TypeError) as e:  # say so, and remove the rest: the state would only block
                log.warning(f"container {container.id!r}: cannot unmount its rootfs: {e}")  # a new container's id


def _plan_cgroups(plan: dict) -> list[str]:
    try:
        return cgroup_control.container_cgroups(plan)
    except StopIteration:  # a plan without a cgroup: nothing to kill in
        return []


def _made_cgroups(plan: dict) -> list[str]:
    return [o["args"]["dir"] for o in plan["ops"] if o["op"] == "cgroup_mkdir"]


def _remove_cgroups(made: list[str], parents_made: list[str]) -> list[str]:
    """rmdir the container's cgroups (deepest first), then the parents create made if nothing else lives there
    now; returns the cgroups that stay."""
    left = [path for path in reversed(made) if not _rmdir_cgroup(path)]
    for parent in parents_made:  # deepest first
        try:
            os.rmdir(parent)
        except OSError:
            pass  # another container's cgroup lives there now
    return left


def _poststop(plan: dict, pid: int) -> None:
    if plan.get("poststop"):  # the executor loads only for a plan with poststop hooks
        from mrunc import log
        from mrunc.executor.optable import Context
        from mrunc.executor.run import run_after

        run_after(plan["poststop"], Context(init_pid=pid), warn=log.warning)


def _rmdir_cgroup(path: str) -> bool:
    """rmdir a cgroup once its last (killed) process has left it; False if it is still there."""
    def gone() -> bool:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY until the last killed process has left
            return False
        return True

    ops_lifecycle.wait_gone(lambda: not gone(), 5)
    return not os.path.isdir(path)
