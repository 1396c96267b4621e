"""Process ops: working dir, rlimits, ids, capabilities, no_new_privs, seccomp, fds, execve."""

import errno
import os

from mrunc.executor import b64, libc
from mrunc.executor.flags import CAPABILITIES, MAX_ID, RLIMITS, mask
from mrunc.executor.ops_fs import write_proc
from mrunc.executor.optable import Context, op

CLOSE_RANGE_CLOEXEC = 4
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"  # execvp's, where the environment has no PATH


@op("chdir", "init", "path", "must", syscalls=("openat", "openat2", "fchdir", "close"))
def chdir(ctx: Context, path: str, must: bool) -> None:
    """fchdir(2) to `path` resolved inside our root, never through a magic link: `/proc/self/fd/N` naming a
    leaked host fd would put the user process outside the container (CVE-2024-21626). Tried once before the
    id change (as root) and once after, where it must succeed; without no_new_privs and with a filter the
    second try is chdir_as_user's."""
    try:
        root = os.open("/", libc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = libc.open_in_root(root, path, libc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        finally:
            os.close(root)
        try:
            os.fchdir(fd)
        finally:
            os.close(fd)
        ctx.cwd_error = None
    except OSError as e:
        if must:
            raise
        ctx.cwd_error = e


@op("chdir_as_user", "init", "path", syscalls=(), fallback=("chdir", "getcwd"))
def chdir_as_user(ctx: Context, path: str) -> None:
    """After seccomp_load and the id change: nothing if chdir as root got there. If root was refused (EACCES,
    EPERM: a root-squashed NFS directory the user may enter), chdir(2) as the user, then getcwd(2), which the
    kernel answers with "(unreachable)..." for a directory outside our root (ENOENT from Python), so a cwd reached
    through a magic link to an fd of ours is refused (CVE-2024-21626; runc's verifyCwd). Any other error of the
    first try (ELOOP: a magic link; ENOENT) is final and raised here. Plain chdir(2): a profile may lack openat2."""
    error = ctx.cwd_error
    if error is None:
        return
    if error.errno not in (errno.EACCES, errno.EPERM):
        raise error
    os.chdir(path)
    try:
        os.getcwd()
    except FileNotFoundError:
        raise OSError(errno.ENOENT, "the working directory is outside the container's root (CVE-2024-21626)",
                      path) from None


@op("apparmor_profile", "init", "name")
def apparmor_profile(ctx: Context, name: str) -> None:
    """Enter AppArmor profile `name` at the next execve: write `exec NAME` to /proc/thread-self/attr/apparmor/exec
    (attr/exec where the kernel has no per-LSM directory), as libapparmor's aa_change_onexec does."""
    try:
        write_proc("thread-self/attr/apparmor/exec", f"exec {name}")
    except FileNotFoundError:
        write_proc("thread-self/attr/exec", f"exec {name}")


@op("selinux_exec_label", "init", "label")
def selinux_exec_label(ctx: Context, label: str) -> None:
    """Run the next execve in SELinux context `label`: write it to /proc/thread-self/attr/exec (setexeccon)."""
    write_proc("thread-self/attr/exec", label)


@op("setrlimit", "init", "type", "soft", "hard")
def setrlimit(ctx: Context, type: str, soft: int, hard: int) -> None:
    """setrlimit(2) on the container's init; its children inherit it."""
    libc.setrlimit(RLIMITS[type], soft, hard)


@op("oom_score_adj", "init", "value")
def oom_score_adj(ctx: Context, value: int) -> None:
    """Write /proc/self/oom_score_adj, only to the procfs file itself (ops_fs.write_proc)."""
    write_proc("self/oom_score_adj", str(value))


@op("umask", "init", "mask", syscalls=("umask",))
def umask(ctx: Context, mask: int) -> None:
    """umask(2) for the user process."""
    os.umask(mask)


@op("drop_bounding", "init", "keep", syscalls=(("prctl", libc.PR_CAPBSET_DROP),))
def drop_bounding(ctx: Context, keep: list[str]) -> None:
    """prctl(PR_CAPBSET_DROP) every capability the kernel knows except `keep`. The kernel's last capability is
    where the drop answers EINVAL, not what /proc/sys/kernel/cap_last_cap says: the rootfs may fake that."""
    kept = {CAPABILITIES[name] for name in keep}
    for cap in range(64):
        if cap not in kept:
            try:
                libc.prctl(libc.PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                return


@op("keep_caps", "init", syscalls=(("prctl", libc.PR_SET_KEEPCAPS, 1),))
def keep_caps(ctx: Context) -> None:
    """prctl(PR_SET_KEEPCAPS, 1): keep permitted capabilities across the uid change that follows."""
    libc.prctl(libc.PR_SET_KEEPCAPS, 1)


@op("set_ids", "init", "uid", "gid", "additional_gids", syscalls=("setgroups", "setresgid", "setresuid"))
def set_ids(ctx: Context, uid: int, gid: int, additional_gids: list[int]) -> None:
    """setgroups, setresgid, setresuid: groups and gid first, while we still may. An id above MAX_ID is refused
    (an edited plan): 4294967295 would leave the id unchanged, root."""
    if not all(0 <= i <= MAX_ID for i in (uid, gid, *additional_gids)):
        raise OSError(errno.EINVAL, f"ids must be 0 to {MAX_ID}")
    os.setgroups(additional_gids)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


@op("capset", "init", "effective", "permitted", "inheritable", syscalls=("capset",))
def capset(ctx: Context, effective: list[str], permitted: list[str], inheritable: list[str]) -> None:
    """capset(2): the effective, permitted and inheritable sets of the user process."""
    libc.capset(_cap_bits(effective), _cap_bits(permitted), _cap_bits(inheritable))


def _cap_bits(names: list[str]) -> int:
    return sum(1 << CAPABILITIES[name] for name in set(names))


@op("ambient_raise", "init", "caps", syscalls=(("prctl", libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE),))
def ambient_raise(ctx: Context, caps: list[str]) -> None:
    """prctl(PR_CAP_AMBIENT_RAISE) each capability (it must be permitted and inheritable already)."""
    for name in caps:
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, CAPABILITIES[name])


@op("no_new_privs", "init", syscalls=(("prctl", libc.PR_SET_NO_NEW_PRIVS, 1),))
def no_new_privs(ctx: Context) -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1): execve can no longer grant privileges (setuid bits, file caps)."""
    libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)


@op("non_dumpable", "child init", syscalls=(("prctl", libc.PR_SET_DUMPABLE, 0),))
def non_dumpable(ctx: Context) -> None:
    """prctl(PR_SET_DUMPABLE, 0): the container's processes can no longer open our /proc/PID/exe (the host's
    interpreter: CVE-2019-5736), fds, cwd or environ, nor ptrace us. A fork inherits it; execve resets it."""
    libc.prctl(libc.PR_SET_DUMPABLE, 0)


@op("seccomp_load", "init", "bpf", "flags", "pfc", syscalls=("seccomp",))
def seccomp_load(ctx: Context, bpf: str, flags: list[str], pfc: str) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER) with the BPF the compiler made; `pfc` is its readable form."""
    libc.seccomp_set_filter(b64.decode(bpf), mask(flags, libc.SECCOMP_FILTER_FLAGS))


@op("close_caller_fds", "child", "preserve")
def close_caller_fds(ctx: Context, preserve: int) -> None:
    """close_range(2) over every fd the caller passed but stdio and the preserved ones (3..3+preserve-1), keeping
    mrunc's own (the sync socket, the exec fifo): the caller's locks and pipes never reach the container's init."""
    keep = sorted({0, 1, 2, *range(3, 3 + preserve), ctx.sync.fd, ctx.exec_fifo} - {-1})
    first = 0
    for fd in keep:
        if fd > first:
            libc.close_range(first, fd - 1, 0)
        first = fd + 1
    libc.close_range(first, 0xFFFFFFFF, 0)


@op("close_fds", "init", "preserve", syscalls=("close_range",))
def close_fds(ctx: Context, preserve: int) -> None:
    """Mark every fd above stdio and the preserved ones close-on-exec, so none leaks into the container."""
    libc.close_range(3 + preserve, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)


def search_path_of(env: list[str]) -> str | None:
    """The container's PATH, as execvp would take it from the environment."""
    return next((e[5:] for e in env if e.startswith("PATH=")), None)


def _lookup(name: str, search_path: str | None) -> str:
    """Find the program as execvp would, but with the container's PATH."""
    if "/" in name:
        return name
    search_path = search_path or DEFAULT_PATH
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(2, f"executable file not found in $PATH ({search_path})", name)


def _refuse_own_binary(path: str, depth: int = 0) -> None:
    """Refuse a program, or a script interpreter (`#!/proc/self/exe`), reached through a magic link: the kernel
    would run our own interpreter binary in the container, which could then reopen it for writing through
    /proc/PID/exe and replace the host's copy (CVE-2019-5736). A file this process cannot read is left to
    execve: check_program runs while init may read any file it could own (mode 0111 hides nothing then); one
    it still cannot read belongs to a uid outside init's user namespace, as the runtime's binary does, which
    the container then cannot write either."""
    root = os.open("/", libc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = libc.open_in_root(root, path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "the program or its #! interpreter resolves through a magic link such as "
                          "/proc/self/exe, which would run mrunc's own binary in the container (CVE-2019-5736)",
                          path) from None
        return
    finally:
        os.close(root)
    with open(fd, "rb") as f:
        head = f.read(256)
    interpreter = head[2:].split(b"\n")[0].split() if head.startswith(b"#!") else []
    if interpreter and depth < 4:  # the kernel follows at most a few nested interpreters
        _refuse_own_binary(os.fsdecode(interpreter[0]), depth + 1)


def _identity(path: str) -> tuple[int, int]:
    """The file the kernel's execve of `path` would open."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


PROGRAM_CHECK_SYSCALLS = ("newfstatat", "access", "openat", "openat2", "close", "ioctl", "lseek", "read")


@op("check_program", "init", "program", "search_path", syscalls=PROGRAM_CHECK_SYSCALLS)
def check_program(ctx: Context, program: str, search_path: str | None) -> None:
    """Find the program as execve will and refuse it if it or a #! interpreter resolves through a magic link
    such as /proc/self/exe (CVE-2019-5736). Run before the id change, so a script the user may execute but not
    read (mode 0111) cannot hide its #! line; execve then runs this very file or refuses."""
    try:
        path = _lookup(program, search_path)
        identity = _identity(path)
    except FileNotFoundError:
        return  # execve reports it, with the user's view of PATH
    _refuse_own_binary(path)
    ctx.checked_program = identity


@op("recheck_program", "init", "program", "search_path", syscalls=PROGRAM_CHECK_SYSCALLS)
def recheck_program(ctx: Context, program: str, search_path: str | None) -> None:
    """Just before seccomp_load: find the program again as execve will (as the user, with no_new_privs; else
    before the id change), refuse a file other than the one check_program read (replaced since) and read its
    #! line again. The path found is what execve runs; none found is left to execve, which reports it."""
    try:
        path = _lookup(program, search_path)
        identity = _identity(path)
    except FileNotFoundError:
        return
    if ctx.checked_program and identity != ctx.checked_program:
        raise OSError(errno.EPERM, "not the file check_program read before the id change; it was replaced since",
                      path)
    _refuse_own_binary(path)
    ctx.program = path


@op("execve", "init", "args", "env", syscalls=("execve",))
def execve(ctx: Context, args: list[str], env: list[str]) -> None:
    """execve(2) the user process: the file recheck_program found. If neither check found one (root cannot see
    what the user may: root-squashed NFS), each candidate of the container's PATH in turn, as execvp does; a file
    the checks found but the user cannot is not there for the user. Only execve(2): a filter may be loaded."""
    environ = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    name = args[0]
    if ctx.program or ctx.checked_program is None and "/" in name:
        os.execve(ctx.program or name, args, environ)
    else:
        _execvp(name, args, environ, search_path_of(env) or DEFAULT_PATH, try_path=ctx.checked_program is None)


def _execvp(name: str, args: list[str], environ: dict, search_path: str, try_path: bool) -> None:
    """execve each candidate of the PATH in turn, as execvp(3) does (with execve(2) alone), when `try_path`."""
    denied: OSError | None = None
    for directory in search_path.split(":") if try_path else ():
        try:
            os.execve(f"{directory or '.'}/{name}", args, environ)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except PermissionError as e:  # as execvp: go on, and report it if nothing else runs
            denied = e
    if denied:
        raise denied
    raise FileNotFoundError(2, f"executable file not found in $PATH ({search_path})", name)
