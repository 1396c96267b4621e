"""Real containers: seccomp filters compiled by mrunc, loaded by the executor, observed from inside."""

import errno
import signal

import pytest

from tests.conftest import base_config, run_config
from tests.reference import reference_config


def _allow_list_without(*names: str) -> list[str]:
    """podman's default profile's allowed syscalls, minus `names`: a realistic allow list."""
    rules = reference_config("podman-run-netns.json")["linux"]["seccomp"]["syscalls"]
    allowed = {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r for n in r["names"]}
    return sorted(allowed - set(names))


@pytest.mark.parametrize("no_new_privs", [True, False], ids=["nnp", "no-nnp"])
def test_denied_syscall_returns_the_rules_errno(bundle, no_new_privs):
    """With no_new_privs the filter loads last; without it, before the capability drop. Both must hold."""
    script = "grep Seccomp: /proc/self/status; mkdir /tmp/d 2>&1; touch /tmp/f && echo touched"
    config = base_config(["sh", "-c", script])
    config["root"]["readonly"] = False
    config["process"]["noNewPrivileges"] = no_new_privs
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}],
    }
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == [
        "Seccomp:\t2",
        "mkdir: can't create directory '/tmp/d': Invalid cross-device link",
        "touched",
    ], result.stderr


def test_default_errno_ret_applies_to_syscalls_not_listed(bundle):
    config = base_config(["sh", "-c", "mkdir /tmp/d 2>&1; echo still running"])
    config["root"]["readonly"] = False
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOSYS,  # no architectures: this machine's own (the test is not about ABIs)
        "syscalls": [{"names": _allow_list_without("mkdir", "mkdirat"), "action": "SCMP_ACT_ALLOW"}],
    }
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["mkdir: can't create directory '/tmp/d': Function not implemented",
                                          "still running"], result.stderr


def test_rule_without_errno_ret_returns_eperm(bundle):
    config = base_config(["sh", "-c", "mkdir /tmp/d 2>&1"])
    config["root"]["readonly"] = False
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    result = run_config(bundle, config)
    assert result.stdout.strip() == "mkdir: can't create directory '/tmp/d': Operation not permitted", result.stderr


def test_argument_conditioned_rule_denies_only_matching_calls(bundle):
    """kill(pid, SIGUSR2) is refused with EACCES; kill with any other signal goes through."""
    script = "trap 'echo got-usr1' USR1; kill -USR1 $$; kill -USR2 $$ 2>&1 || echo usr2-denied; kill -0 $$ && echo ok"
    config = base_config(["sh", "-c", script])
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                      "args": [{"index": 1, "value": int(signal.SIGUSR2), "op": "SCMP_CMP_EQ"}]}],
    }
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines[0] == "got-usr1", result.stderr
    assert "Permission denied" in lines[1] and lines[2] == "usr2-denied"
    assert lines[3] == "ok"


def test_kill_process_action_ends_the_container_with_sigsys(bundle):
    config = base_config(["mkdir", "/tmp/d"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}
    result = run_config(bundle, config)
    assert result.returncode == 128 + 31, result.stderr  # SIGSYS
