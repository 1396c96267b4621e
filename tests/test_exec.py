"""`mrunc exec`: a new process joins a running container's namespaces, cgroup and seccomp filter, with its own
user, capabilities, no_new_privs, rlimits, cwd, env and terminal; foreground waits, --detach returns."""

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import REFERENCE, base_config
from tests.lifecycle_helpers import Lifecycle, wait_for

LOOP = ["sh", "-c", "while true; do sleep 0.1; done"]


@pytest.fixture
def box(bundle, tmp_path):
    """A running container (created and started) with a seccomp filter that refuses mkdir."""
    lc = Lifecycle(bundle, tmp_path)
    config = base_config(LOOP)
    config["hostname"] = "box"
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    try:
        assert lc.create(config).returncode == 0, lc.output.read_text()
        assert lc("start", bundle.id).returncode == 0
        lc.init_pid = lc.state()["pid"]
        yield lc
    finally:
        lc.cleanup()


def test_exec_joins_every_namespace_and_the_cgroup_of_init(box, tmp_path):
    pid_file = tmp_path / "exec.pid"
    result = box.detached("exec", "--detach", "--pid-file", str(pid_file), box.bundle.id, "--", "sleep", "30")
    assert result.returncode == 0, box.output.read_text()
    pid = int(pid_file.read_text())  # decimal, no newline
    try:
        for ns in ("mnt", "pid", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{box.init_pid}/ns/{ns}"), ns
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{box.init_pid}/cgroup").read_text()
        assert pid in _cgroup_pids(box.init_pid)
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}/ns"))


def _cgroup_pids(init_pid: int) -> list[int]:
    line = next(x for x in Path(f"/proc/{init_pid}/cgroup").read_text().splitlines() if ":pids:" in x)
    return [int(p) for p in Path(f"/sys/fs/cgroup/pids{line.split(':', 2)[2]}/cgroup.procs").read_text().split()]


def test_foreground_exec_sees_the_container_and_returns_its_status(box):
    result = box("exec", box.bundle.id, "--", "sh", "-c", "hostname; echo $$; cat /proc/1/cmdline; exit 6")
    lines = result.stdout.splitlines()
    assert lines[0] == "box" and int(lines[1]) > 1, result  # uts namespace; a pid of the container's
    assert "while true" in lines[2]  # pid 1 of the pid namespace it joined is the container's init
    assert result.returncode == 6


def test_process_file_sets_user_caps_no_new_privs_rlimits_cwd_env(box, tmp_path):
    process = json.loads((REFERENCE / "configs" / "podman-exec-process.json").read_text())
    process.update(args=["sh", "-c", "id; pwd; echo $GREETING; ulimit -n; grep -E '^(CapBnd|NoNewPrivs)' "
                         "/proc/self/status; exit 5"], cwd="/tmp", env=process["env"] + ["GREETING=hello"])
    process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [7]}
    process["capabilities"] = {kind: ["CAP_KILL"] for kind in ("bounding", "effective", "permitted")}
    process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]
    (tmp_path / "process.json").write_text(json.dumps(process))
    result = box("exec", "--process", str(tmp_path / "process.json"), box.bundle.id)
    assert result.stdout.splitlines() == ["uid=1000(user) gid=1000(user) groups=7", "/tmp", "hello", "512",
                                          "CapBnd:\t0000000000000020", "NoNewPrivs:\t1"], result.stderr
    assert result.returncode == 5


def test_exec_runs_under_the_containers_seccomp_filter(box):
    result = box("exec", box.bundle.id, "--", "sh", "-c", "mkdir /tmp/d && echo made")
    assert "made" not in result.stdout
    assert "Operation not permitted" in result.stderr


def test_cwd_env_and_user_flags(box):
    result = box("exec", "--cwd", "/tmp", "--env", "A=1", "-e", "B=2", "--user", "1000:1000", box.bundle.id, "--",
                 "sh", "-c", "pwd; echo $A$B; id -u; id -g")
    assert result.stdout.split() == ["/tmp", "12", "1000", "1000"], result.stderr


@pytest.mark.parametrize("env, problem", [(["BAD"], "missing '='"), (["A=1", "=v"], "the name is empty")])
def test_env_without_a_name_and_equals_sign_is_refused_as_runc_and_runs_nothing(box, env, problem):
    """runc's exec refuses such an entry ("invalid environment variable: missing '='"); the process never runs."""
    flags = [arg for entry in env for arg in ("--env", entry)]
    result = box("exec", *flags, box.bundle.id, "--", "echo", "ran")
    assert (result.returncode, result.stdout) == (1, ""), result
    assert result.stderr.strip() == (f"mrunc: exec: --env {env[-1]!r}: invalid environment variable: {problem}; "
                                     "allowed: NAME=VALUE, NAME not empty (VALUE may be)"), result.stderr
    assert box("exec", "--env", "EMPTY=", box.bundle.id, "--", "sh", "-c", "echo ${EMPTY-unset}.").stdout == ".\n"


def test_env_entry_of_a_process_file_without_equals_sign_names_its_index(box, tmp_path):
    (tmp_path / "process.json").write_text(json.dumps({"args": ["echo", "ran"], "env": ["PATH=/bin", "BAD"]}))
    result = box("exec", "--process", str(tmp_path / "process.json"), box.bundle.id)
    assert (result.returncode, result.stdout) == (1, ""), result
    assert "/env/1: got \"BAD\": invalid environment variable: missing '='; allowed: NAME=VALUE" in result.stderr
    assert "Traceback" not in result.stderr


def test_exec_tty_is_relayed_in_the_foreground(box):
    result = box("exec", "--tty", box.bundle.id, "--", "sh", "-c", "tty; echo ctty > /dev/tty")
    assert result.stdout.replace("\r", "").split() == ["/dev/pts/0", "ctty"], result


def test_detached_tty_needs_a_console_socket(box):
    result = box("exec", "--detach", "--tty", box.bundle.id, "--", "true")
    assert result.returncode == 1
    assert "needs --console-socket" in result.stderr


def test_bad_process_names_the_field_and_starts_nothing(box, tmp_path):
    (tmp_path / "process.json").write_text(json.dumps({"args": [], "cwd": "/"}))
    result = box("exec", "--process", str(tmp_path / "process.json"), box.bundle.id)
    assert result.returncode == 1
    assert "/args: got []; allowed: a non-empty list of strings" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "process.json").write_text(json.dumps({"args": ["true"], "capabilities": {"bounding": ["CAP_NOPE"]}}))
    result = box("exec", "--process", str(tmp_path / "process.json"), box.bundle.id)
    assert "/capabilities/bounding/0: unknown capability 'CAP_NOPE'" in result.stderr


def test_exec_into_an_unknown_or_stopped_container_fails_clearly(box):
    assert "does not exist" in box("exec", "nosuch", "--", "true").stderr
    assert box("kill", box.bundle.id, "KILL").returncode == 0
    wait_for(lambda: box.state()["status"] == "stopped")
    result = box("exec", box.bundle.id, "--", "true")
    assert result.returncode == 1
    assert "it is stopped" in result.stderr


def test_plan_flag_shows_the_joins(box):
    result = box("exec", "--plan", box.bundle.id, "--", "true")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    setns = [line.split("setns", 1)[1].split("#")[0].split() for line in lines if " setns " in line]
    assert ["type=pid", f"path=/proc/{box.init_pid}/ns/pid"] in setns
    assert "seccomp_load" in result.stdout and "execve" in result.stdout


def test_missing_command_reports_the_failing_op_and_leaves_the_container_running(box):
    result = box("exec", box.bundle.id, "--", "nosuch")
    assert result.returncode == 1
    assert "execve (/process/args)" in result.stderr and "ENOENT" in result.stderr, result.stderr
    assert box.state()["status"] == "running"
