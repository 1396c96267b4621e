"""Hooks on real containers: all six kinds at the spec's points and in listed order, the state JSON on
stdin, args and env as configured, timeouts that kill, and failures that clean up (or only warn)."""

import errno
import json
import os
from pathlib import Path

import pytest

from tests.conftest import base_config, run_config
from tests.lifecycle_helpers import wait_for

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def logging_hook(kind: str, log: str, **extra) -> dict:
    """A hook that appends `KIND HOOKVAR STDIN` as one line to `log`."""
    script = f'echo "$0 $HOOKVAR $(cat)" >> {log}'
    return {"path": "/bin/sh", "args": ["sh", "-c", script, kind], "env": [f"HOOKVAR=var-{kind}"], **extra}


def hooked_config(tmp_path: Path, args: list[str]) -> tuple[dict, Path]:
    """Every kind logs to one file, bind-mounted at /hooklog so startContainer (after pivot_root) sees it."""
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    config = base_config(args)
    config["annotations"] = {"org.example.test": "hooks"}
    config["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(logdir),
                             "options": ["rbind", "rw"]})
    config["hooks"] = {kind: [logging_hook(kind, "/hooklog/log" if kind == "startContainer"
                                           else str(logdir / "log"))] for kind in KINDS}
    return config, logdir / "log"


def entries(log: Path) -> list[tuple[str, str, dict]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(kind, var, json.loads(state)) for kind, var, state in (line.split(" ", 2) for line in lines)]


def test_all_six_hooks_run_in_order_with_state_args_and_env(lc, bundle, tmp_path):
    config, log = hooked_config(tmp_path, ["sleep", "100"])
    assert lc.create(config).returncode == 0, lc.output.read_text()
    pid = lc.state()["pid"]
    assert [e[0] for e in entries(log)] == ["prestart", "createRuntime", "createContainer"]
    assert lc("start", bundle.id).returncode == 0
    assert [e[0] for e in entries(log)][3:] == ["startContainer", "poststart"]
    assert lc("kill", bundle.id, "KILL").returncode == 0
    lc.wait_status("stopped")
    assert lc("delete", bundle.id).returncode == 0
    seen = entries(log)
    assert [e[0] for e in seen] == list(KINDS)
    # runtime.md: `created` is after lifecycle step 2; the create-time hooks are steps 3-5 (crun sends the same)
    statuses = {"prestart": "created", "createRuntime": "created", "createContainer": "created",
                "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for kind, var, state in seen:
        assert var == f"var-{kind}"  # the hook's own env, and only it
        assert state["status"] == statuses[kind] and state["id"] == bundle.id
        assert state["bundle"] == str(bundle.path) and state["annotations"] == {"org.example.test": "hooks"}
        # runtime.md: the pid as seen where the hook runs: 1 in the container's pid namespace, init's host pid outside
        assert state["pid"] == (1 if kind in ("createContainer", "startContainer") else pid), (kind, state)
        assert state["ociVersion"] == config["ociVersion"]


def test_foreground_run_runs_every_hook(bundle, tmp_path):
    config, log = hooked_config(tmp_path, ["true"])
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    assert [e[0] for e in entries(log)] == list(KINDS)


def test_a_slow_hook_is_killed_at_its_timeout(lc, bundle, tmp_path):
    pid_file = tmp_path / "hook.pid"
    config = base_config(["true"])
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {pid_file}; sleep 30"],
                                          "timeout": 1}]}
    result = lc.create(config)
    assert result.returncode == 1
    assert "createRuntime hook /bin/sh ran past specified timeout of 1.0s" in lc.output.read_text()
    hook_pid = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{hook_pid}").exists() or "Z" in Path(f"/proc/{hook_pid}/stat").read_text())
    assert not (bundle.state_root / bundle.id).exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_stops_the_container_and_cleans_up(lc, bundle, kind):
    config = base_config(["true"])
    config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}]}
    assert lc.create(config).returncode == 1
    assert f"{kind} hook /bin/sh exited with status 3: boom" in lc.output.read_text()
    assert not (bundle.state_root / bundle.id).exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_a_failing_start_container_hook_stops_the_container(lc, bundle):
    config = base_config(["sh", "-c", "echo user-process-ran"])
    config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}]}
    assert lc.create(config).returncode == 0
    assert lc("start", bundle.id).returncode == 0
    lc.wait_status("stopped")
    output = lc.output.read_text()
    assert "startContainer hook /bin/sh exited with status 5" in output and "user-process-ran" not in output
    assert lc("delete", bundle.id).returncode == 0
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_failing_poststart_and_poststop_hooks_only_warn(lc, bundle):
    config = base_config(["sleep", "100"])
    failing = {"path": "/bin/false"}
    config["hooks"] = {"poststart": [failing], "poststop": [failing]}
    assert lc.create(config).returncode == 0
    started = lc("start", bundle.id)
    assert started.returncode == 0 and "warning: " in started.stderr and "poststart hook /bin/false" in started.stderr
    assert lc.state()["status"] == "running"
    deleted = lc("delete", "--force", bundle.id)
    assert deleted.returncode == 0 and "poststop hook /bin/false" in deleted.stderr
    assert not (bundle.state_root / bundle.id).exists()


def test_hook_of_a_missing_program_names_it(lc, bundle):
    config = base_config(["true"])
    config["hooks"] = {"prestart": [{"path": "/nonexistent/hook"}]}
    assert lc.create(config).returncode == 1
    assert "/nonexistent/hook: No such file or directory" in lc.output.read_text()
    assert os.path.exists(bundle.path)


STATUS_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                 "Seccomp_filters")
# What a process records of itself: its credentials and filter (/proc/self/status), and a call the filter denies.
RECORD = "grep -E '^({}):' /proc/self/status; mkdir /tmp/{} 2>&1; true".format("|".join(STATUS_FIELDS), "{}")


def _status(text: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())
            if key in STATUS_FIELDS}


def hook_as_process_config(tmp_path: Path, no_new_privs: bool) -> tuple[dict, Path]:
    """A container process and a startContainer hook that both record themselves (RECORD): uid and gid 1000, a
    supplementary group, capabilities dropped to a bounding pair and one ambient one, a filter denying mkdir. The
    hook writes to the file returned (a bind mount the user may write)."""
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    logdir.chmod(0o777)  # the hook writes here as uid 1000
    config = base_config(["sh", "-c", RECORD.format("process")])
    config["root"]["readonly"] = False
    config["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(logdir),
                             "options": ["rbind", "rw"]})
    process = config["process"]
    process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001]}
    process["noNewPrivileges"] = no_new_privs
    process["capabilities"] = {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_KILL"],
                               "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}],
    }
    record = "{ " + RECORD.format("hook") + "; } > /hooklog/record"
    config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", record]}]}
    return config, logdir / "record"


def assert_hook_ran_as_the_process(seen_by_hook: str, seen_by_process: str, no_new_privs: bool) -> None:
    hook, container_process = _status(seen_by_hook), _status(seen_by_process)
    assert hook == container_process, (seen_by_hook, seen_by_process)
    assert set(hook) == set(STATUS_FIELDS)
    assert hook["Uid"].split() == ["1000"] * 4 and hook["Gid"].split() == ["1000"] * 4
    assert hook["Groups"].split() == ["1001"]
    assert hook["CapEff"] == hook["CapAmb"] == f"{1 << 5:016x}"  # CAP_KILL, raised as ambient
    assert hook["CapBnd"] == f"{1 << 5 | 1 << 10:016x}"  # CAP_KILL, CAP_NET_BIND_SERVICE
    assert hook["NoNewPrivs"] == str(int(no_new_privs))
    assert hook["Seccomp"] == "2" and hook["Seccomp_filters"] == "1"
    denied = "mkdir: can't create directory '/tmp/{}': Invalid cross-device link"
    assert denied.format("hook") in seen_by_hook.splitlines()
    assert denied.format("process") in seen_by_process.splitlines()


@pytest.mark.parametrize("no_new_privs", [False, True], ids=["no-nnp", "nnp"])
def test_start_container_hook_runs_with_the_process_user_capabilities_and_seccomp_filter(bundle, tmp_path,
                                                                                      no_new_privs):
    """runc runs startContainer hooks after the credential change and under the filter: the hook binary is found in
    the container's root (the image may control it), so it must not run as init (root, every capability, unfiltered).
    Without no_new_privs the filter loads before the capability drop, and the hook's child does the same."""
    config, record = hook_as_process_config(tmp_path, no_new_privs)
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    assert_hook_ran_as_the_process(record.read_text(), result.stdout, no_new_privs)
