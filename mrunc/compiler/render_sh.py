"""What the sh rendering (templates/plan.sh.j2) needs beyond one op at a time: mount flags as mount(8) words,
and the calls that gather several ops: nsenter/unshare (namespaces, id maps) and setpriv (ids, capabilities,
no_new_privs, LSM labels), plus the ops sh cannot express at all."""

import shlex

SH_EXPRESSED = {"cgroup_mkdir", "cgroup_copy_parent", "cgroup_write", "cgroup_enter", "cgroup_attach", "cgroup_joined",
                "cgroup_open_tasks", "cgroup_join_self", "default_signals",
                "fork", "setns", "unshare", "tmpfs_copyup",
                "write_id_map", "become_ns_root", "fork_init", "loopback_up", "mount", "remount", "mknod", "symlink",
                "pivot_root", "mask_path", "readonly_path", "sysctl", "sethostname", "setdomainname", "setrlimit",
                "oom_score_adj", "chdir", "chdir_as_user", "check_program", "recheck_program", "umask", "drop_bounding",
                "keep_caps", "set_ids", "capset", "ambient_raise", "no_new_privs", "close_fds", "close_caller_fds",
                "execve", "mkdir_in_root", "cgroup_write_first", "netdev_check", "netdev_move", "apparmor_profile",
                "selinux_exec_label", "personality", "sched_setattr", "ioprio_set",
                "mount_parent_private",  # findmnt, and mount --make-private if its parent is shared
                "cgroup_require"}  # a test of the controller's hierarchy (v1) or cgroup.controllers (v2)
MOUNT_WORDS = {"MS_RDONLY": "ro", "MS_NOSUID": "nosuid", "MS_NODEV": "nodev", "MS_NOEXEC": "noexec",
               "MS_SYNCHRONOUS": "sync", "MS_REMOUNT": "remount", "MS_MANDLOCK": "mand", "MS_DIRSYNC": "dirsync",
               "MS_NOSYMFOLLOW": "nosymfollow", "MS_NOATIME": "noatime", "MS_NODIRATIME": "nodiratime",
               "MS_BIND": "bind", "MS_MOVE": "move", "MS_SILENT": "silent", "MS_UNBINDABLE": "unbindable",
               "MS_PRIVATE": "private", "MS_SLAVE": "slave", "MS_SHARED": "shared", "MS_RELATIME": "relatime",
               "MS_STRICTATIME": "strictatime", "MS_LAZYTIME": "lazytime"}
RECURSIVE = {"bind", "private", "slave", "shared", "unbindable"}  # MS_REC turns these into rbind, rprivate, ...
UNSHARE_OPTIONS = {"CLONE_NEWNS": "--mount", "CLONE_NEWUTS": "--uts", "CLONE_NEWIPC": "--ipc", "CLONE_NEWNET": "--net",
                   "CLONE_NEWPID": "--pid", "CLONE_NEWCGROUP": "--cgroup", "CLONE_NEWTIME": "--time",
                   "CLONE_NEWUSER": "--user"}
SETARCH = {"PER_LINUX": "linux64", "PER_LINUX32": "linux32"}  # setarch(8) names of personality domains
CHRT_POLICIES = {"SCHED_OTHER": "--other", "SCHED_FIFO": "--fifo", "SCHED_RR": "--rr", "SCHED_BATCH": "--batch",
                 "SCHED_IDLE": "--idle", "SCHED_DEADLINE": "--deadline"}
IONICE_CLASSES = {"IOPRIO_CLASS_RT": "1", "IOPRIO_CLASS_BE": "2", "IOPRIO_CLASS_IDLE": "3"}
NSENTER_OPTIONS = {"network": "--net"}  # the other namespace types are their own option names


def mount_options(flags: list[str]) -> str:
    """MS_ flag names as mount(8) option words: ['MS_BIND', 'MS_REC', 'MS_RDONLY'] -> 'rbind,ro'."""
    words = [MOUNT_WORDS[f] for f in flags if f != "MS_REC"]
    if "MS_REC" in flags:
        words = ["r" + w if w in RECURSIVE else w for w in words]
    return ",".join(words)


def prefixes(path: str) -> list[str]:
    """/dev/pts -> [/dev, /dev/pts]: each directory on the way, to check for a symlink."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1)]


def cgroup_levels(directory: str) -> list[str]:
    """/sys/fs/cgroup/cpuset/a/b -> [/sys/fs/cgroup/cpuset/a, /sys/fs/cgroup/cpuset/a/b]: each level to fill."""
    parts = directory.split("/")
    return ["/".join(parts[:i]) for i in range(6, len(parts) + 1)]


def _caps(names: list[str]) -> str:
    return ",".join(["-all"] + [f"+{n.removeprefix('CAP_').lower()}" for n in names])


def _chrt(a: dict) -> list[str]:
    """chrt(1) and nice(1) words for a sched_setattr op; chrt has no option for the flags but reset-on-fork."""
    words = ["chrt", CHRT_POLICIES[a["policy"]]]
    if "SCHED_FLAG_RESET_ON_FORK" in a["flags"]:
        words.append("--reset-on-fork")
    if a["policy"] == "SCHED_DEADLINE":
        words += [f"--sched-runtime={a['runtime']}", f"--sched-deadline={a['deadline']}",
                  f"--sched-period={a['period']}"]
    return [words + [str(a["priority"])]] + ([["nice", "-n", str(a["nice"])]] if a["nice"] else [])


# Commands the script runs on the host, before pivot_root (its own sh, builtins aside); `tools` adds the ones it runs
# after pivot_root, copied from the host (the rootfs need not have them: busybox lacks prlimit and a full setpriv).
HOST_COMMANDS = {"unshare", "mount", "umount", "mkdir", "mknod", "chown", "ln", "pivot_root", "mktemp", "cp", "ldd",
                 "awk", "rmdir", "dirname", "rm", "cat", "sh"}
EXTRA_COMMANDS = {"setns": ["nsenter"], "loopback_up": ["ip"], "netdev_check": ["ip"], "netdev_move": ["nsenter", "ip"],
                  "mount_parent_private": ["findmnt", "grep"], "tmpfs_copyup": ["chmod", "touch"],
                  "cgroup_require": ["grep"]}
AFTER_PIVOT_COMMANDS = {"mount": "mount", "remount": "mount", "mask_path": "mount", "readonly_path": "mount",
                        "sethostname": "hostname", "setrlimit": "prlimit"}


def tools(plan: dict, setpriv: list[str], wrap: list[list[str]]) -> tuple[list[str], list[str]]:
    """(the host programs run after pivot_root, from copies; every program the script needs on the host)."""
    ops = plan["ops"]
    pivot = next((i for i, o in enumerate(ops) if o["op"] == "pivot_root"), len(ops))
    after = {AFTER_PIVOT_COMMANDS[o["op"]] for o in ops[pivot:] if o["op"] in AFTER_PIVOT_COMMANDS}
    after |= {command[0] for command in wrap} | ({"setpriv"} if setpriv else set()) | {"env", "sh"}
    needed = HOST_COMMANDS | after | {c for o in ops for c in EXTRA_COMMANDS.get(o["op"], [])}
    return sorted(after), sorted(needed)


def context(plan: dict) -> dict:
    """What the sh template gathers from several ops: the nsenter/unshare call, the setpriv call, the gaps."""
    enter: list[str] = []
    attach: list[str] = []
    unshare = ["unshare", "--fork", "--kill-child"]
    setpriv: list[str] = []
    wrap: list[list[str]] = []  # commands that set what execve keeps (setarch, chrt, nice, ionice), before setpriv
    gaps = []
    for i, o in enumerate(plan["ops"]):
        name, a = o["op"], o["args"]
        if name == "setns":
            enter.append(f"{NSENTER_OPTIONS.get(a['type'], '--' + a['type'])}={shlex.quote(a['path'])}")
        elif name == "unshare":
            unshare += [UNSHARE_OPTIONS[f] for f in a["flags"]]
        elif name in ("cgroup_attach", "cgroup_open_tasks"):
            attach += a["dirs"]
        elif name == "write_id_map":
            option = "--map-users" if a["file"] == "uid_map" else "--map-groups"
            for inner, outer, count in (line.split() for line in a["content"].splitlines()):
                unshare.append(f"{option}={outer},{inner},{count}")
        elif name == "drop_bounding":
            setpriv.append(f"--bounding-set={_caps(a['keep'])}")
        elif name == "set_ids":
            groups = ",".join(map(str, a["additional_gids"]))
            setpriv += [f"--regid={a['gid']}", f"--reuid={a['uid']}",
                        f"--groups={groups}" if groups else "--clear-groups"]
        elif name == "capset":
            setpriv.append(f"--inh-caps={_caps(a['inheritable'])}")
        elif name == "ambient_raise":
            setpriv.append(f"--ambient-caps={_caps(a['caps'])}")
        elif name == "no_new_privs":
            setpriv.append("--no-new-privs")
        elif name == "apparmor_profile":
            setpriv.append(f"--apparmor-profile={shlex.quote(a['name'])}")
        elif name == "selinux_exec_label":
            setpriv.append(f"--selinux-label={shlex.quote(a['label'])}")
        elif name == "personality":
            wrap.append(["setarch", SETARCH[a["domain"]]])
        elif name == "sched_setattr":
            wrap += _chrt(a)
        elif name == "ioprio_set":
            wrap.append(["ionice", "-c", IONICE_CLASSES[a["io_class"]], "-n", str(a["priority"])])
        if name not in SH_EXPRESSED or name == "sched_setattr" and set(a["flags"]) - {"SCHED_FLAG_RESET_ON_FORK"}:
            gaps.append(f"{i} [{o['proc']}] {name} ({o['src']})")
    if "--mount" in unshare:
        unshare += ["--propagation", "unchanged"]  # the plan's own first mount op sets it
    from mrunc.executor.ops import OPS

    docs = {o["op"]: OPS[o["op"]].doc for o in plan["ops"]}
    netdevs = [o["args"] for o in plan["ops"] if o["op"] == "netdev_move"]  # init moves them from the host's netns
    after_pivot, host = tools(plan, setpriv, wrap)
    return {"enter": (["nsenter"] + enter if enter else []) + unshare, "attach": attach, "setpriv": setpriv,
            "wrap": wrap, "gaps": gaps, "docs": docs, "netdevs": netdevs, "tools": after_pivot, "host_tools": host}
