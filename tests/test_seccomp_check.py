"""Rule 8's check (compiler/seccomp_check.py): the declared syscalls, their numbers, the filter's verdict on them
with their fixed arguments; and chdir_as_user, the plain chdir after the filter, against a real kernel."""

import errno
import json
import os

import pytest

from mrunc.compiler import seccomp_check
from mrunc.compiler.compile import compile_bytes
from mrunc.compiler.errors import ConfigError
from mrunc.compiler.lower_seccomp import _import_pyseccomp
from mrunc.executor import libc
from mrunc.executor.flags import CLONE_FLAGS, MOUNT_FLAGS
from mrunc.executor.ops import OPS
from mrunc.executor.ops_process import chdir_as_user
from mrunc.executor.optable import Context
from mrunc.tools.regen_plans import HOST_V1

CAPS = ["CAP_KILL"]
PROCESS = {"cwd": "/", "args": ["sh"], "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")}}


def _declared_names() -> set[str]:
    calls = [c for o in OPS.values() for c in (o.syscalls or ()) + o.fallback]
    calls += [*seccomp_check.EXECUTOR_ALWAYS, *seccomp_check.EXECUTOR_HANDOVER, *seccomp_check.EXECUTOR_ON_FAILURE]
    return {c if isinstance(c, str) else c[0] for c in calls}


def test_every_declared_syscall_has_its_x86_64_number_as_libseccomp_has_it():
    sc = _import_pyseccomp()
    numbers = seccomp_check.NUMBERS["x86_64"]
    assert _declared_names() <= set(numbers)
    assert {name: sc.resolve_syscall(sc.Arch.X86_64, name) for name in numbers} == numbers


def test_the_ops_that_may_follow_the_filter_declare_their_syscalls():
    for name in ("drop_bounding", "keep_caps", "set_ids", "capset", "ambient_raise", "chdir_as_user", "execve"):
        assert OPS[name].syscalls is not None, name
    assert OPS["chdir_as_user"].syscalls == () and OPS["chdir_as_user"].fallback == ("chdir", "getcwd")


def _compile(seccomp: dict, no_new_privs: bool = False) -> dict:
    config = {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
              "process": {**PROCESS, "noNewPrivileges": no_new_privs},
              "linux": {"namespaces": [{"type": "mount"}], "seccomp": seccomp}}
    return compile_bytes(json.dumps(config).encode(), "/b", "check", HOST_V1)


def _prctl_denied_when(option: int) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["prctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": option, "op": "SCMP_CMP_EQ"}]}]}


def test_a_rule_on_arguments_is_judged_with_the_ops_own_fixed_arguments():
    """prctl(PR_SET_KEEPCAPS) is what keep_caps makes after the filter: refused. prctl(PR_SET_NAME) is not."""
    with pytest.raises(ConfigError, match=r"^/linux/seccomp/syscalls/0: .* denies prctl \(ERRNO\(1\)\), which op "
                                          r"\d+ keep_caps \(/process/capabilities\) makes after it every time"):
        _compile(_prctl_denied_when(libc.PR_SET_KEEPCAPS))
    plan = _compile(_prctl_denied_when(15))  # PR_SET_NAME
    assert [o["op"] for o in plan["ops"]][-3:] == ["capset", "chdir_as_user", "execve"]


def test_a_syscall_only_the_fallback_makes_is_a_note_not_a_refusal():
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    plan = _compile(seccomp)
    (note,) = [n for n in plan["notes"] if "getcwd" in n]
    assert note.startswith("/linux/seccomp/syscalls/0: the filter loaded at op ")
    assert note.endswith("denies getcwd (KILL_PROCESS), which op "
                         f"{len(plan['ops']) - 2} chdir_as_user (/process/cwd) makes after it on its fallback path "
                         "(see its doc)")


def test_an_undeclared_op_after_the_filter_is_a_problem(monkeypatch):
    plan = _compile({"defaultAction": "SCMP_ACT_ALLOW"})
    monkeypatch.setattr(OPS["capset"], "syscalls", None)
    (denial,) = [d for d in seccomp_check.denials(plan["ops"], "x86_64") if d.always]
    assert (denial.op, denial.syscall) == ("capset", "an undeclared syscall")


# --- chdir_as_user on a real kernel: a child in its own mount namespace, chrooted into the test rootfs ------------

def _in_a_chroot(rootfs, outside, path: str) -> str:
    """Fork; the child mounts proc in `rootfs`, keeps an fd on `outside` (a directory outside the root, as a
    leaked fd would be), chroots, and runs chdir_as_user(path) as if root had been refused there. Its result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            libc.unshare(CLONE_FLAGS["CLONE_NEWNS"])
            libc.mount(None, "/", None, MOUNT_FLAGS["MS_REC"] | MOUNT_FLAGS["MS_PRIVATE"], None)
            libc.mount("proc", str(rootfs / "proc"), "proc", 0, None)
            fd = os.open(outside, os.O_RDONLY | os.O_DIRECTORY)
            os.chroot(rootfs)
            os.chdir("/")
            ctx = Context(cwd_error=PermissionError(errno.EACCES, "Permission denied"))
            chdir_as_user(ctx, path.format(fd=fd))
            answer = f"cwd {os.getcwd()}"
        except OSError as e:
            answer = f"{errno.errorcode[e.errno]} {e.strerror}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 4096).decode()
    os.close(read)
    os.waitpid(pid, 0)
    return answer


def test_chdir_as_user_refuses_a_cwd_outside_the_root_that_a_plain_chdir_reached(busybox_rootfs, tmp_path):
    """A plain chdir(2) follows /proc/self/fd/N to wherever the fd points; getcwd(2) then says the cwd is not under
    our root, and chdir_as_user refuses it (CVE-2024-21626). A directory inside the root is fine."""
    (tmp_path / "outside").mkdir()
    assert _in_a_chroot(busybox_rootfs, tmp_path / "outside", "/tmp") == "cwd /tmp"
    answer = _in_a_chroot(busybox_rootfs, tmp_path / "outside", "/proc/self/fd/{fd}")
    assert answer == "ENOENT the working directory is outside the container's root (CVE-2024-21626)"


def test_chdir_as_user_does_nothing_after_a_chdir_as_root_that_worked_and_raises_any_other_error():
    ctx = Context()
    here = os.getcwd()
    chdir_as_user(ctx, "/nonexistent")
    assert os.getcwd() == here
    ctx.cwd_error = OSError(errno.ELOOP, "Too many levels of symbolic links")
    with pytest.raises(OSError) as raised:
        chdir_as_user(ctx, "/proc/self/fd/3")
    assert raised.value.errno == errno.ELOOP and os.getcwd() == here
