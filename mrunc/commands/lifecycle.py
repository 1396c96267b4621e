"""What create, run and start share: make the state dir, compile with the exec fifo, run the plan up to
wait_start and record the state; start releases init and runs the poststart hooks."""

import os
import pwd
import time

from mrunc.commands.common import fail
from mrunc.executor import jsontext, ops_lifecycle, procfs
from mrunc.executor.cgroup_control import container_cgroups
from mrunc.state import Container, StateError, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mrunc.commands.args import Options as Namespace


def rfc3339_now() -> str:
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


def create(options: "Namespace", opts: "Namespace", detach: bool) -> int:
    """Create the container (runc create); without `detach`, also start it and wait for it (runc run)."""
    from mrunc import log

    if options.systemd_cgroup:
        log.warning("--systemd-cgroup: there is no systemd on this host; using cgroupfs paths")
    try:
        container = Container(options.root, opts.id)
        container.make_dir()
    except (StateError, OSError) as e:
        return fail(str(e) if isinstance(e, StateError) else f"{options.root}: {e.strerror}")
    lock = container.lock()
    try:
        status = _create_locked(container, opts, detach, lock, options.policy)
    except OSError as e:  # the state dir's disk is full, say
        container.remove()
        return fail(f"container {opts.id!r}: cannot write its state: {e.strerror}: {e.filename or container.dir}")
    except BaseException:
        container.remove()
        raise
    finally:
        os.close(lock)
    if status or not detach:  # a failed create, or a foreground run that is over
        container.remove()
    return status


def host_policy(option: str, plan: dict, text: str | None, config: dict | None, container_id: str,
                kind: str) -> str | None:
    """Why the host's policy refuses this plan (mrunc/policy.py), or None; a policy in force that cannot be read
    refuses everything, as an unreadable policy must not let anything through."""
    from mrunc import policy

    try:
        in_force = policy.load(option)
    except policy.PolicyError as e:
        return f"{e}: refusing to {kind} anything until it is fixed"
    return policy.enforce(in_force, plan, text, config, container_id, kind) if in_force else None


def _create_locked(container: Container, opts: "Namespace", detach: bool, lock: int, policy_option: str) -> int:
    from mrunc.commands.compile_apart import compile_apart

    config_path = os.path.join(os.path.abspath(opts.bundle), "config.json")
    # Read once: the plan is compiled from these bytes and the state recorded from them. Read twice, a config.json
    # replaced in between (an engine rewriting it, an attacker) would give a plan of one config and a state of another.
    try:
        with open(config_path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return fail(f"{config_path}: {e.strerror}")
    # A foreground run needs no exec fifo: its plan is the one `mrunc compile` shows.
    compiled = compile_apart(config_path, opts.id, opts.console_socket, exec_fifo=container.fifo if detach else None,
                             preserve_fds=opts.preserve_fds, strict=opts.strict, raw=raw)
    if isinstance(compiled, str):
        return fail(compiled)
    plan, plan_text = compiled
    if not any(o["op"] == "execve" for o in plan["ops"]):
        from mrunc.executor.plan import NO_PROCESS

        return fail(f"{config_path}: /process: {NO_PROCESS}")
    if detach and any(o["op"] == "pty_relay" for o in plan["ops"]):  # as runc: nobody would hold the pty
        return fail("/process/terminal: true needs --console-socket when the container is detached")
    config = jsontext.loads(raw)  # the bytes compiled, so valid JSON
    if refusal := host_policy(policy_option, plan, plan_text, config, opts.id, "create" if detach else "run"):
        return fail(refusal)
    state = {"ociVersion": config["ociVersion"], "id": opts.id, "status": "creating", "pid": 0,
             "bundle": plan["bundle"], "rootfs": os.path.join(plan["bundle"], config["root"]["path"]),
             "created": rfc3339_now(), "owner": pwd.getpwuid(os.geteuid()).pw_name,
             "annotations": config.get("annotations", {}), "cgroups": container_cgroups(plan),
             "resources": config.get("linux", {}).get("resources", {}),  # in force; `mrunc update` changes them
             "cgroup_parents_made": _missing_parents(plan)}
    write_atomic(container.path("plan.json"), plan_text)
    container.save(state)

    def created(pid: int) -> None:
        del state["status"]  # derived from now on (state.py)
        state.update(pid=pid, init_start_time=procfs.start_time(pid))
        if detach and any(o["op"] == "unmount_at_exit" for o in plan["ops"]):  # for delete: init's root
            from mrunc.executor.ops_sharedmnt import mount_id

            state["rootfs_mount_id"] = mount_id(f"/proc/{pid}/root")
        container.save(state)
        if opts.pid_file:
            write_atomic(os.path.abspath(opts.pid_file), str(pid))
        container.unlock(lock)  # created: other commands on this id may go on while create returns
        from mrunc import log

        log.debug(f"container {opts.id!r} created: init pid {pid}, state in {container.dir}")

    from mrunc.commands.common import execute

    return execute(plan, opts.trace, created=created, detach=detach)


def _missing_parents(plan: dict) -> list[str]:
    """The parents of the plan's cgroups that do not exist yet: create makes them, delete removes them
    (when no other container's cgroup lives there by then)."""
    missing = []
    for o in plan["ops"]:
        if o["op"] == "cgroup_mkdir":
            path = os.path.dirname(o["args"]["dir"])
            while not os.path.isdir(path):
                missing.append(path)
                path = os.path.dirname(path)
    return missing


def start(container: Container, state: dict) -> int:
    """Release a created container's init and run the poststart hooks (the caller holds the lock)."""
    status = container.status(state)
    if status != "created":
        return fail(f"cannot start container {container.id!r}: it is {status}, not created")
    pid = state["pid"]
    hooks = container.plan().get("poststart")  # a damaged plan.json: refused before init goes on
    try:
        ops_lifecycle.release(container.fifo, wait_for_exec=True)
    except OSError as e:
        return fail(f"cannot start container {container.id!r}: {e.strerror}")
    if hooks:  # the executor loads only for a plan with poststart hooks
        from mrunc import log
        from mrunc.executor.optable import Context
        from mrunc.executor.run import run_after

        run_after(hooks, Context(init_pid=pid), warn=log.warning)
    return 0
