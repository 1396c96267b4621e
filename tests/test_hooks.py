"""Hooks on real containers: all six kinds at the spec's points and in listed order, the state JSON on
stdin, args and env as configured, timeouts that kill, and failures that clean up (or only warn)."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import base_config, run_config
from tests.lifecycle_helpers import Lifecycle, wait_for

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@pytest.fixture
def lc(bundle, tmp_path):
    lifecycle = Lifecycle(bundle, tmp_path)
    yield lifecycle
    lifecycle.cleanup()


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
