"""The order of operations, in one place. Each step says why it stands where it does.

runc, crun and youki agree on this order (design.md); where they differ the choice is written here.
"""

from mrunc.compiler import lower_cgroups, lower_hooks, lower_network, lower_process, lower_rootfs, lower_terminal
from mrunc.compiler import lower_procattrs as procattrs
from mrunc.compiler.emit import Emitter
from mrunc.executor.ops_process import search_path_of
from mrunc.executor.plan import NO_PROCESS, process_steps_after

TYPE_CHECKING = False  # collections.abc imports collections (~1 ms of every compile) for a name only checkers read
if TYPE_CHECKING:
    from collections.abc import Callable


def lower(config: dict, rootfs: str, bundle: str, host: dict, cgroup_default: str,
          console_socket: str | None = None, container_id: str = "", exec_fifo: str | None = None,
          preserve_fds: int = 0) -> Emitter:
    """`exec_fifo`: the state dir's fifo (create, run); without it the plan runs straight through to execve.
    `preserve_fds`: fds 3..3+N-1 the engine passes on to the container (create --preserve-fds)."""
    emit = Emitter(bundle)
    linux = config.get("linux", {})
    process = config.get("process", {})
    ns = lower_process.namespaces(linux)

    # 0. linux.netDevices exist on the host (the spec's check), before anything is made: a missing one then leaves
    #    nothing to undo, and no device moved before it dies with the container's new network namespace.
    lower_network.lower_check(emit, linux, ns)
    # 0b. Each cgroup controller a limit needs (hugepageLimits: hugetlb; network: net_cls, net_prio...) is on the host,
    #     before anything is made, for the same reason: only a controller the host lacks gets a check, which fails
    #     (the spec: a runtime that cannot create what the config asks MUST fail; runc refuses such a container).
    cgroup_writes = lower_cgroups.resource_writes(emit, linux, host)
    lower_cgroups.lower_require(emit, cgroup_writes, host)

    # 1. cgroup first: runtime makes and configures it before any process exists.
    cgroup_path = lower_cgroups.cgroup_path(linux, cgroup_default)
    cgroup_dirs = lower_cgroups.lower(emit, linux, host, cgroup_path, cgroup_writes)
    # The exec fifo is made, and held open, before fork: init inherits the fd and reaches the fifo through
    # it once pivot_root has hidden the state dir (step 10 blocks on it).
    if exec_fifo:
        emit("exec_fifo_create", "runtime", "/", path=exec_fifo)
    # Without a mount namespace of its own (none listed: the runtime's is inherited, config-linux.md; or one joined
    # by path) the container's mounts go into a namespace that outlives it, all beneath init's bind of the rootfs
    # onto itself (4): runtime notes what is mounted at the rootfs now, to detach init's bind when the container is
    # gone. Runtime's own op, before fork: on v2 no runtime op may come between fork_init and cgroup_joined.
    own_mount_ns = "mount" in ns and ns["mount"] is None
    if not own_mount_ns:
        emit("unmount_at_exit", "runtime", "/root/path", root=rootfs, ns=ns.get("mount"))
    emit("fork", "runtime", "/")
    # child first closes every fd its caller passed but stdio and --preserve-fds (mrunc's own sync socket and exec
    # fifo stay): init would otherwise hold the caller's locks and pipes from create until start, and an engine
    # waiting for EOF on a pipe, or for a lock, would wait that long (runc's waiting init holds none of them).
    emit("close_caller_fds", "child", "/", preserve=preserve_fds)
    v1 = host["cgroup"] == "v1"
    if v1:  # for init's own join (3b), while child is still on the host: see cgroup_open_tasks
        emit("cgroup_open_tasks", "child", "/linux/cgroupsPath", dirs=cgroup_dirs)

    # 2. Namespaces: joins, then a new user namespace whose maps the parent writes while child waits
    #    (only a process outside it may), then the rest, owned by that user namespace; all but a new cgroup
    #    namespace, which is rooted at the cgroup its creator is in, so it waits for the join (runc and crun
    #    unshare it last, once the process is in its cgroup).
    lower_process.lower_namespaces(emit, linux)
    # linux.netDevices: runtime moves each host interface into the network namespace child is now in (new or
    # joined), by child's pid, while child waits; so before init exists and the container process ever looks at
    # its interfaces (runc moves them at the same point). Not later: child exits at fork_init.
    lower_network.lower(emit, linux)

    # 3. Fork again: a new pid namespace takes effect for children only; init is its pid 1.
    emit("fork_init", "child", "/linux/namespaces")

    # 3b. Into the cgroup, before anything the cgroup must govern: a new cgroup namespace (rooted where its creator
    #     is), a mount of a cgroup or from a device (the devices controller checks the open), device nodes, hooks,
    #     any fork, execve.
    #     v1: init moves itself first thing, through the tasks files child opened on the host. A single thread
    #     moving itself takes no threadgroup lock; a cgroup.procs write takes it, and the first one after an idle
    #     pause waits ~8 ms for an RCU grace period (runc and crun pay that wait).
    #     v2 has no such file outside threaded subtrees, so runtime writes init's pid to cgroup.procs as soon as it
    #     learns it, while init goes on with its mounts, and init waits for it (cgroup_joined) where it must.
    joined = False

    def join_cgroup() -> None:
        nonlocal joined
        if not joined:
            joined = True
            if not v1:
                emit("cgroup_joined", "init", "/linux/cgroupsPath")
            if "cgroup" in ns and ns["cgroup"] is None:
                emit("unshare", "init", "/linux/namespaces", flags=["CLONE_NEWCGROUP"])

    if v1:
        emit("cgroup_join_self", "init", "/linux/cgroupsPath")
        join_cgroup()
    else:
        emit("cgroup_attach", "runtime", "/linux/cgroupsPath", dirs=cgroup_dirs)

    if "network" in ns and ns["network"] is None:
        emit("loopback_up", "init", "/linux/namespaces")

    # 4. rootfs: / private (nothing leaks to the host), rootfs bound onto itself, mounts in listed
    #    order (config.md), then /dev nodes and symlinks (they may live on a tmpfs mounted at /dev).
    #    In a mount namespace not its own, / is not the container's to change: only the bind, which the mounts
    #    then hang from (runtime detaches it at exit, see 1).
    cgroup_by_ctrl = lower_cgroups.dirs(host, cgroup_path)
    lower_rootfs.lower_root(emit, rootfs, linux.get("rootfsPropagation", ""), own_mount_ns)
    lower_rootfs.lower_mounts(emit, config, rootfs, bundle, cgroup_by_ctrl, before_governed=join_cgroup)
    join_cgroup()
    lower_rootfs.lower_devices(emit, linux, rootfs, in_userns="user" in ns)
    lower_rootfs.lower_cwd(emit, process, rootfs)

    # 5. Hooks after the mounts and before pivot_root (config.md): prestart (deprecated) and createRuntime
    #    by the runtime on the host, then createContainer in the container's namespaces.
    lower_hooks.lower(emit, config, "prestart", "runtime", container_id)
    lower_hooks.lower(emit, config, "createRuntime", "runtime", container_id)
    lower_hooks.lower(emit, config, "createContainer", "init", container_id)

    # 6. pivot_root; then the read-only root, names, sysctls (before /proc/sys turns read-only),
    #    read-only and masked paths, as runc's init does after pivot. In a mount namespace not its own, chroot
    #    (as runc): pivot_root would move the root of every process in that namespace, and detaching the old root
    #    would take it from them.
    emit("pivot_root" if own_mount_ns else "chroot", "init", "/root/path", root=rootfs)
    # rootfsPropagation shared or unbindable: set on the rootfs mount once it is / (see ROOT_PROPAGATION).
    lower_rootfs.lower_rootfs_propagation(emit, linux.get("rootfsPropagation", ""))
    # The pty comes from the container's own /dev/ptmx, so after pivot_root; before the read-only
    # remount, since /dev/console is bound over (runc's setupConsole sits at the same point).
    lower_terminal.lower(emit, process, console_socket, mount_ns=True)
    if config["root"].get("readonly"):
        emit("remount", "init", "/root/readonly", target="/",
             flags=["MS_BIND", "MS_REMOUNT", "MS_RDONLY", "MS_REC"], root=None)
    if config.get("hostname"):
        emit("sethostname", "init", "/hostname", name=config["hostname"])
    if config.get("domainname"):
        emit("setdomainname", "init", "/domainname", name=config["domainname"])
    for key, value in sorted(linux.get("sysctl", {}).items()):
        emit("sysctl", "init", f"/linux/sysctl/{key}", key=key, value=value)
    lower_rootfs.lower_paths(emit, linux, rootfs)

    if "process" not in config:
        # The spec makes process REQUIRED for start only: the plan builds the container, ends before the process
        # steps, and no command starts it (executor/plan.py).
        emit.note("/process", f"missing: {NO_PROCESS}")
        return emit
    if process.get("execCPUAffinity"):
        emit.note("/process/execCPUAffinity", "not for the container's init (config.md); applied to the processes "
                  "`mrunc exec` adds")

    def before_exec() -> None:
        # Block until `mrunc start` (config.md: startContainer hooks run after start), then the
        # startContainer hooks. poststart/poststop: lower_later.
        if exec_fifo:
            # Until start, init is the host's interpreter holding the state dir's fds, and `mrunc exec` may put
            # the container's processes beside it: they must not reach its /proc/1/exe, fds or environ.
            emit("non_dumpable", "init", "/")
            emit("wait_start", "init", "/", path=exec_fifo)
        lower_hooks.lower(emit, config, "startContainer", "init", container_id)
        lower_hooks.lower_later(emit, config, container_id)

    # personality(2), which execve keeps: set where runc's init sets it, after the paths and before the LSM exec
    # label, seccomp and the capability drop; so as root, and before a filter may forbid the syscall.
    procattrs.lower_personality(emit, config)
    # linux.memoryPolicy (set_mempolicy(2), kept across fork and execve) at the same point: still root, and before
    # seccomp, whose profiles often deny set_mempolicy (runc 1.3's init sets it before its seccomp filter too).
    procattrs.lower_memory_policy(emit, config)
    seccomp = linux.get("seccomp")
    lower_user_process(emit, process, _seccomp(emit, seccomp) if seccomp else None, "/linux/seccomp", preserve_fds,
                       before_exec)
    hooks_run_as_the_process(emit)
    return emit


def hooks_run_as_the_process(emit: Emitter) -> None:
    """11. A startContainer hook runs with the user process's filter and credentials, as runc runs it (its init
    loads the filter, changes ids and drops capabilities, then runs the hooks right before execve). Its path is
    resolved in the container's root, so the image may control the binary: run as init (root with every capability
    init holds, unfiltered, in the container's namespaces) it would hold more than the container's own process.
    init cannot simply take those steps first: without noNewPrivileges the filter must load before the capability
    drop and init may then make only the id and capability calls and execve (step 8), not fork and wait for a hook.
    So the hook's child takes the steps still ahead of init (`as_process`: those very ops, with their arguments, in
    their order) right before its own execve: filter then credentials without no_new_privs, while it still holds
    CAP_SYS_ADMIN; with it (or no filter) init already holds the credentials and no_new_privs, and the child loads
    the filter only. After its load the child makes only what init makes after its own (seccomp_check.py)."""
    for i, o in enumerate(emit.ops):
        if o["op"] == "hook" and o["args"]["kind"] == "startContainer":
            o["args"]["as_process"] = process_steps_after(emit.ops, i)  # type: ignore[index]


def lower_user_process(emit: Emitter, process: dict, seccomp: dict | None, seccomp_src: str, preserve_fds: int,
                       before_exec: "Callable[[], None]") -> None:
    """From rlimits to execve: the steps that shape the user process, for a container's init and for a
    process `mrunc exec` adds to it. `seccomp`: the seccomp_load op's arguments, if there is a filter."""
    # LSM labels take effect at execve; asked for while init is still root, before seccomp and no_new_privs
    # (runc: AppArmor right after the hostname, SELinux just before seccomp). On a host without that LSM the
    # kernel refuses the write, so the container fails there, as runc's does (runc refuses an SELinux label
    # earlier, before creating anything; mrunc's cleanup leaves nothing either).
    if process.get("apparmorProfile"):
        emit("apparmor_profile", "init", "/process/apparmorProfile", name=process["apparmorProfile"])
    if process.get("selinuxLabel"):
        emit("selinux_exec_label", "init", "/process/selinuxLabel", label=process["selinuxLabel"])
    # rlimits (runc sets them from the parent with prlimit, crun before clone, youki after the user
    # namespace): here init sets them, while it still holds its capabilities.
    lower_process.lower_limits(emit, process)
    # Scheduler and I/O priority: init is still root (raising either needs CAP_SYS_NICE) and no filter is loaded
    # yet (runc's init sets them at the same point, before the SELinux label, seccomp and the capability drop).
    procattrs.lower_process(emit, process)

    # umask always: without one the container would inherit whatever umask mrunc was started with; runc's default
    # when the config gives none is 0022. Here, before anything that may follow the filter: init creates no file
    # after it, and the startContainer hooks inherit it as they did.
    user = process.get("user", {})
    emit("umask", "init", "/process/user/umask" if "umask" in user else "/process/user", mask=user.get("umask", 0o022))

    # 7. chdir before the id change (root may enter dirs the user cannot) and again after it
    #    (the user may enter dirs root cannot, e.g. root-squashed NFS); only the second must succeed.
    cwd = process.get("cwd", "/")
    emit("chdir", "init", "/process/cwd", path=cwd, must=False)
    # The CVE-2019-5736 check reads the program and its #! interpreters while init may still read any file it
    # could own: after the id change a script the user may run but not read (0111) would hide its #! line.
    # After the chdir, so a relative program is found where execve will find it.
    check = {"program": process["args"][0], "search_path": search_path_of(process.get("env", []))}
    emit("check_program", "init", "/process/args", **check)

    # 8. seccomp. Once the filter is loaded, init's own syscalls are filtered too, and a profile need not allow
    #    what the process model does not need (real allowlists lack openat2 and close_range; design.md rule 8). So
    #    after seccomp_load init makes only the id and capability calls and execve (as runc), and everything
    #    else, and whatever needs a newer or unusual syscall, goes before it: chdir resolved in the root
    #    (openat2), close_fds (close_range), the start wait, the hooks, the signal resets, the program's recheck.
    #    compiler/seccomp_check.py runs the syscalls each op after the filter declares through the filter.
    #    With no_new_privs (or no filter) the credentials come first and the filter right before execve. Without
    #    no_new_privs the kernel loads a filter only with CAP_SYS_ADMIN: the filter goes before the capability
    #    drop, and the start wait and the startContainer hooks before the filter and the id change; each hook's
    #    child takes the filter and the credentials itself before its execve (step 11).
    nnp = process.get("noNewPrivileges", False)
    filter_before_drop = bool(seccomp) and not nnp
    if not filter_before_drop:
        # 9. Bounding set -> keep-caps -> setgroups/setresgid/setresuid -> capset -> ambient -> no_new_privs.
        lower_process.lower_credentials(emit, process)
        emit("chdir", "init", "/process/cwd", path=cwd, must=True)
        if nnp:
            emit("no_new_privs", "init", "/process/noNewPrivileges")

    # 10. No fd of ours may reach the user process (CVE-2024-21626): all above stdio become
    #     close-on-exec. Then what the caller waits for (`before_exec`); the signals Python ignores back to their
    #     defaults (not before: init writes to hooks' pipes, where SIGPIPE would kill it); then the program found
    #     again as execve will find it and checked against check_program's (a hook or the container's processes
    #     may have replaced it since).
    emit("close_fds", "init", "/process", preserve=preserve_fds)
    before_exec()
    emit("default_signals", "init", "/process")
    emit("recheck_program", "init", "/process/args", **check)
    if seccomp:
        emit("seccomp_load", "init", seccomp_src, **seccomp)
    if filter_before_drop:
        # 9 without no_new_privs: the id and capability calls follow the filter, then the chdir as the user. It acts
        # only where root was refused (EACCES/EPERM; any other error of the first chdir is final there) and is a
        # plain chdir(2), as a profile may lack openat2. Its one risk is the one resolve-in-root guards against:
        # a magic link (/proc/self/fd/N of an fd of ours, still open until execve) taking the cwd outside the
        # container (CVE-2024-21626). getcwd(2) right after it tells: the kernel prefixes "(unreachable)" to a
        # directory outside our root and Python raises ENOENT, so the op fails (runc's verifyCwd). `..` and
        # absolute links cannot leave the root after pivot_root or chroot.
        lower_process.lower_credentials(emit, process)
        emit("chdir_as_user", "init", "/process/cwd", path=cwd)
    emit("execve", "init", "/process/args", args=process["args"], env=process.get("env", []))


def _seccomp(emit: Emitter, seccomp: dict) -> dict:
    """The seccomp_load arguments: from the cache when it holds this profile (seccomp_cache.py), else compiled
    by libseccomp (and then stored). A cache entry or directory not trusted is a note, and the filter compiled."""
    from mrunc.compiler import seccomp_cache

    entry = seccomp_cache.lookup(seccomp)
    if entry.filter is not None:
        return entry.filter
    if entry.refused:
        emit.note("/linux/seccomp", f"seccomp cache not used ({entry.refused}); compiled with libseccomp")
    from mrunc.compiler.lower_seccomp import compile_filter

    compiled = compile_filter(seccomp)
    seccomp_cache.store(entry, compiled)  # also over an entry refused, where the directory is trusted
    return compiled


def lower_exec(process: dict, target: dict, console_socket: str | None, pid_file: str | None,
               preserve_fds: int, detach: bool) -> Emitter:
    """`mrunc exec`: a new process in a running container. `target` is what the container's own plan
    fixed: its init pid, cgroup dirs, namespace types, rootfs (used when it has no mount namespace) and
    seccomp_load arguments. The process gets the steps of `lower` that shape a process, in its order."""
    emit = Emitter()
    emit("fork", "runtime", "/")
    # 1. Non-dumpable before joining anything (as runc's nsexec when it joins namespaces): the container's
    #    processes would otherwise see, in /proc/PID of ours, the host's interpreter (exe) to reopen for
    #    writing once we are gone (CVE-2019-5736), and our fds and environ. init inherits it; execve resets it.
    emit("non_dumpable", "child", "/container/namespaces")
    # process.execCPUAffinity.initial: the CPUs child runs on before it joins the cgroup (config.md); `final` is set
    # by init, once in the cgroup. Without a final the kernel decides (since 6.2 it keeps the initial CPUs through
    # the cpuset change, where they are allowed).
    procattrs.lower_affinity(emit, process, "initial", "child")
    # 2. Join the container's cgroup before its namespaces, as init did (its cgroup namespace is rooted there).
    emit("cgroup_enter", "child", "/container/cgroups", dirs=target["cgroups"],
         file="tasks" if target["cgroup"] == "v1" else "cgroup.procs")  # tasks: see 3b of lower
    # 3. Join every namespace init is in: the user namespace first (it then owns our rights in the others).
    #    Their files are all opened first, from the host: init's /proc/PID/ns is out of reach once joined.
    paths = {kind: f"/proc/{target['pid']}/ns/{lower_process.NS_FILES[kind]}" for kind in
             lower_process.NAMESPACE_ORDER if kind in target["namespaces"]}
    emit("open_ns_files", "child", "/container/namespaces", paths=list(paths.values()))
    for kind, path in paths.items():
        emit("setns", "child", "/container/namespaces", type=kind, path=path)
    # 4. Fork: a joined pid (and time) namespace applies to children only.
    emit("fork_init", "child", "/container/namespaces")
    procattrs.lower_affinity(emit, process, "final", "init")
    # 5. Joining the container's own mount namespace made its root ours; in any other it is a chroot.
    if target.get("chrooted") or "mount" not in target["namespaces"]:
        emit("chroot", "init", "/container/rootfs", root=target["rootfs"])
    lower_terminal.lower(emit, process, console_socket, mount_ns=False)  # /dev/console is the container's

    def before_exec() -> None:
        # The engine reads the pid file once exec returns; detached, mrunc returns at wait_runtime_exit
        # and the process runs (and may exit) only once mrunc is gone.
        if pid_file:
            emit("write_pid_file", "runtime", "/", path=pid_file)
        if detach:
            emit("wait_runtime_exit", "init", "/")

    lower_user_process(emit, process, target.get("seccomp"), "/container/seccomp", preserve_fds, before_exec)
    return emit


def update_writes_v1(writes: "list[lower_cgroups.Write]", memory: dict, limit_in_force: int
                     ) -> "list[lower_cgroups.Write]":
    """`mrunc update` on cgroup v1: the cgroup writes, in the order the kernel takes them. `memory`: the update's
    memory fields; `limit_in_force`: the memory limit before it (0: none set)."""
    # The kernel keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes (memory+swap) at every write and
    # refuses one that would break it (EINVAL). When the limit goes up (above the one in force, or to -1, no
    # limit), memsw is raised first, so the new limit fits under it; otherwise the limit goes first (as
    # lower_cgroups lists them), so a lowered memsw still lies above it. runc's update orders them the same way.
    new_limit = memory.get("limit", 0)
    if new_limit == -1 or new_limit > limit_in_force > 0:
        swap_first = [w for w in writes if w[1] == "memory.memsw.limit_in_bytes"]
        return swap_first + [w for w in writes if w not in swap_first]
    return writes
