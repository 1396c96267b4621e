"""Real containers under restrictive seccomp allowlists: after seccomp_load init makes only the calls the process
model needs (order.py, rule 8), so a profile that allows what the container's program needs, and the id and
capability calls where the filter loads before them, starts the container; a profile lacking openat2 or
close_range (the conformance suite's default) no longer stops init."""

import copy
import json

import pytest

from tests.conftest import REFERENCE, base_config, run_config
from tests.lifecycle_helpers import Lifecycle, running, wait_for

SUITE_PROFILE = json.loads((REFERENCE / "runtime-tools" / "default-seccomp.json").read_text())
# Every syscall busybox sh makes to run SCRIPT below in a container, as root or as uid 1000, its $(pwd) fork
# included (strace -f of the container process from its execve on). Nothing else.
BUSYBOX_SH = ["arch_prctl", "brk", "clone", "close", "dup2", "execve", "exit_group", "fcntl", "getcwd", "getgid",
              "getpid", "getppid", "getrandom", "getuid", "mprotect", "newfstatat", "openat", "pipe2", "poll",
              "prctl", "prlimit64", "read", "readlink", "rseq", "rt_sigaction", "rt_sigreturn", "set_robust_list",
              "set_tid_address", "setgid", "setuid", "uname", "wait4", "write"]
# What the process model needs after a filter loaded before the capability drop (no noNewPrivileges).
ID_AND_CAPABILITY_CALLS = ["setgroups", "setresgid", "setresuid", "capset"]
# Shell builtins only: what the container says about itself, from inside.
SCRIPT = ("while read -r key value rest; do case $key in Uid:|Seccomp:|NoNewPrivs:) echo \"$key $value\";; esac; "
          "done < /proc/self/status; echo \"cwd $(pwd)\"")
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def allowlist(names: list[str], default_action: str) -> dict:
    return {"defaultAction": default_action, "architectures": ARCHES,
            "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}


def config_with(seccomp: dict, no_new_privs: bool, uid: int, args: list[str] | None = None) -> dict:
    config = base_config(args or ["sh", "-c", SCRIPT])
    config["process"]["noNewPrivileges"] = no_new_privs
    config["process"]["user"] = {"uid": uid, "gid": uid}
    config["process"]["cwd"] = "/tmp"
    config["linux"]["seccomp"] = copy.deepcopy(seccomp)
    return config


def said(uid: int, no_new_privs: bool) -> list[str]:
    """What SCRIPT prints in a container that runs as `uid` under a filter."""
    return [f"Uid: {uid}", f"NoNewPrivs: {int(no_new_privs)}", "Seccomp: 2", "cwd /tmp"]


CASES = [  # (id, profile, noNewPrivileges, uid)
    ("suite-default-root", SUITE_PROFILE, False, 0),
    ("suite-default-root-nnp", SUITE_PROFILE, True, 0),
    ("suite-default-user", SUITE_PROFILE, False, 1000),
    ("suite-default-user-nnp", SUITE_PROFILE, True, 1000),
    ("busybox-errno-user-nnp", allowlist(BUSYBOX_SH, "SCMP_ACT_ERRNO"), True, 1000),
    ("busybox-kill-user-nnp", allowlist(BUSYBOX_SH, "SCMP_ACT_KILL_PROCESS"), True, 1000),
    ("busybox-kill-root-nnp", allowlist(BUSYBOX_SH, "SCMP_ACT_KILL_PROCESS"), True, 0),
    ("busybox-ids-errno-user", allowlist(BUSYBOX_SH + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_ERRNO"), False, 1000),
    ("busybox-ids-kill-user", allowlist(BUSYBOX_SH + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"), False, 1000),
    ("busybox-ids-kill-root", allowlist(BUSYBOX_SH + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"), False, 0),
]


@pytest.mark.parametrize(("profile", "no_new_privs", "uid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_run_starts_the_container_under_a_restrictive_allowlist(bundle, profile, no_new_privs, uid):
    result = run_config(bundle, config_with(profile, no_new_privs, uid))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == said(uid, no_new_privs), result.stderr


def test_the_suite_profile_still_denies_what_it_does_not_list(bundle):
    """The filter is the suite's, in force: unshare is not on its list, so the container's unshare gets EPERM."""
    result = run_config(bundle, config_with(SUITE_PROFILE, False, 0, ["unshare", "-U", "true"]))
    assert result.returncode == 1 and "Operation not permitted" in result.stderr, result.stderr


@pytest.mark.parametrize(("profile", "no_new_privs"), [
    (SUITE_PROFILE, False),
    (allowlist(BUSYBOX_SH, "SCMP_ACT_KILL_PROCESS"), True),
    (allowlist(BUSYBOX_SH + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"), False),
], ids=["suite-default", "busybox-kill-nnp", "busybox-ids-kill"])
def test_create_then_start_waits_for_start_before_the_filter(bundle, tmp_path, profile, no_new_privs):
    """The fifo wait (and the "created" message to create) come before the filter: create returns, start runs."""
    lc = Lifecycle(bundle, tmp_path)
    try:
        assert lc.create(config_with(profile, no_new_privs, 1000)).returncode == 0, lc.output.read_text()
        assert lc.state()["status"] == "created"
        assert lc("start", bundle.id).returncode == 0
        wait_for(lambda: lc.state()["status"] == "stopped")
        assert lc.output.read_text().splitlines() == said(1000, no_new_privs)
    finally:
        lc.cleanup()


LOOP = ["sh", "-c", "while :; do read -t 1 x < /proc/self/status; done"]


@pytest.mark.parametrize(("profile", "no_new_privs"), [
    (SUITE_PROFILE, False),
    (allowlist(BUSYBOX_SH, "SCMP_ACT_KILL_PROCESS"), True),
    (allowlist(BUSYBOX_SH + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"), False),
], ids=["suite-default", "busybox-kill-nnp", "busybox-ids-kill"])
def test_exec_into_a_container_under_a_restrictive_allowlist(bundle, tmp_path, profile, no_new_privs):
    """`mrunc exec ID` gives the new process the container's filter, loaded at the same point of its steps."""
    config = config_with(profile, no_new_privs, 1000, LOOP)
    with running(bundle, tmp_path, config) as lc:
        result = lc("exec", "--cwd", "/tmp", bundle.id, "--", "sh", "-c", SCRIPT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == said(1000, no_new_privs)
