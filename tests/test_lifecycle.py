"""The lifecycle commands on real containers: create, start, state, kill, delete, run -d, ps, list, pause,
resume; state transitions and errors as runtime-spec runtime.md says; nothing left behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mrunc.executor.host import cgroup_layout
from tests.conftest import REPO, base_config, mrunc
from tests.lifecycle_helpers import wait_for


def writable(args: list[str]) -> dict:
    """base_config with a writable root, so the container can leave marks the test reads from the host."""
    config = base_config(args)
    config["root"]["readonly"] = False
    return config


def cgroup_dirs(bundle) -> list[Path]:
    """The container's cgroup directories: one per v1 controller, or the one v2 directory."""
    root = Path("/sys/fs/cgroup")
    return [*root.glob(f"*{bundle.cgroup}"), *root.glob(bundle.cgroup.lstrip("/"))]


def test_full_lifecycle_create_start_kill_delete(lc, bundle, tmp_path):
    marker = bundle.path / "rootfs" / "tmp" / "started"
    config = writable(["sh", "-c", "echo hello; touch /tmp/started; exec sleep 100"])
    pid_file = tmp_path / "pid"
    result = lc.create(config, "--pid-file", str(pid_file))
    assert result.returncode == 0, lc.output.read_text()

    state = lc.state()
    assert state["status"] == "created"
    assert state["id"] == bundle.id and state["bundle"] == str(bundle.path)
    assert state["rootfs"] == str(bundle.path / "rootfs") and state["ociVersion"] and state["created"]
    pid = state["pid"]
    assert pid_file.read_text() == str(pid)  # decimal, no newline
    assert Path(f"/proc/{pid}").exists()
    time.sleep(0.2)
    assert not marker.exists(), "the user process ran before start"
    assert cgroup_dirs(bundle), "create made no cgroup"

    assert lc("start", bundle.id).returncode == 0
    wait_for(marker.exists)
    assert lc.state()["status"] == "running"
    assert lc.output.read_text() == "hello\n"  # the container kept create's stdio

    assert lc("kill", bundle.id, "KILL").returncode == 0
    assert lc.wait_status("stopped")["pid"] == 0
    assert lc("delete", bundle.id).returncode == 0
    gone = lc("state", bundle.id)
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    assert not (bundle.state_root / bundle.id).exists()
    assert not cgroup_dirs(bundle)


def test_invalid_transitions_are_refused(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    assert lc("start", bundle.id).returncode == 0
    again = lc("start", bundle.id)
    assert again.returncode == 1 and "it is running, not created" in again.stderr
    busy = lc("delete", bundle.id)
    assert busy.returncode == 1 and "not stopped: running" in busy.stderr
    assert lc("kill", bundle.id, "9").returncode == 0
    lc.wait_status("stopped")
    dead = lc("kill", bundle.id)
    assert dead.returncode == 1 and "it is stopped" in dead.stderr
    late = lc("start", bundle.id)
    assert late.returncode == 1 and "it is stopped" in late.stderr
    assert lc("delete", bundle.id).returncode == 0


def test_delete_force_kills_a_running_container(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    pid = lc.state()["pid"]
    assert lc("start", bundle.id).returncode == 0
    assert lc("delete", "--force", bundle.id).returncode == 0
    wait_for(lambda: not _alive(pid))
    assert not cgroup_dirs(bundle) and not (bundle.state_root / bundle.id).exists()


def test_delete_of_a_created_container_fails_and_leaves_it_created(lc, bundle):
    """runtime.md, Delete: deleting a container that is not stopped MUST generate an error (as crun; runc 1.1
    kills it instead). --force removes it."""
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    pid = lc.state()["pid"]
    refused = lc("delete", bundle.id)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"mrunc: cannot delete container '{bundle.id}' that is not stopped: created")
    assert lc.state()["status"] == "created" and _alive(pid) and cgroup_dirs(bundle)
    assert lc("delete", "--force", bundle.id).returncode == 0
    wait_for(lambda: not _alive(pid))
    assert not cgroup_dirs(bundle) and not (bundle.state_root / bundle.id).exists()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("command", [["start"], ["state"], ["kill"], ["delete"], ["pause"], ["resume"], ["ps"]])
def test_unknown_id_fails_with_a_clear_message(lc, command):
    result = lc(*command, "nosuch")
    assert result.returncode == 1
    assert result.stderr.strip() == "mrunc: container 'nosuch' does not exist"


def test_delete_force_of_an_unknown_id_succeeds_as_runc(lc):
    result = lc("delete", "--force", "nosuch")
    assert (result.returncode, result.stderr) == (0, "")


def test_invalid_id_is_refused(lc):
    result = lc("state", "../etc")
    assert result.returncode == 1 and "invalid container id '../etc'" in result.stderr


def test_create_with_a_taken_id_fails_and_keeps_the_first(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    second = lc.create(base_config(["sleep", "100"]))
    assert second.returncode == 1 and f"container '{bundle.id}' already exists" in lc.output.read_text()
    assert lc.state()["status"] == "created"


def test_bad_config_create_names_the_field_and_leaves_nothing(lc, bundle):
    config = base_config(["true"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]
    assert lc.create(config).returncode == 1
    assert "/process/rlimits/0/type" in lc.output.read_text()
    assert not (bundle.state_root / bundle.id).exists() and not cgroup_dirs(bundle)


def test_failing_op_in_create_cleans_up(lc, bundle):
    config = base_config(["true"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "/nonexistent", "options": ["bind"]})
    assert lc.create(config).returncode == 1
    assert f"mount (/mounts/{len(config['mounts']) - 1})" in lc.output.read_text()
    assert not (bundle.state_root / bundle.id).exists() and not cgroup_dirs(bundle)


def test_run_detach_leaves_a_running_container(lc, bundle, tmp_path):
    bundle.write(base_config(["sleep", "100"]))
    result = lc.detached("run", "--detach", "--bundle", str(bundle.path), "--pid-file", str(tmp_path / "p"),
                         bundle.id)
    assert result.returncode == 0, lc.output.read_text()
    state = lc.state()
    assert state["status"] == "running" and (tmp_path / "p").read_text() == str(state["pid"])
    assert lc("delete", "--force", bundle.id).returncode == 0


@pytest.mark.parametrize("name", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_takes_signal_names_and_numbers(lc, bundle, name):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    assert lc("start", bundle.id).returncode == 0
    assert lc("kill", bundle.id, name).returncode == 0
    lc.wait_status("stopped")


@pytest.mark.parametrize("name", ["TERM", "INT"])
def test_kill_stops_a_created_container_as_runc_does(lc, bundle, name):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    pid = lc.state()["pid"]
    assert lc("kill", bundle.id, name).returncode == 0
    lc.wait_status("stopped")
    wait_for(lambda: not _alive(pid))
    assert lc("delete", bundle.id).returncode == 0


def test_kill_refuses_an_unknown_signal(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    result = lc("kill", bundle.id, "NOPE")
    assert result.returncode == 1 and "invalid signal 'NOPE'" in result.stderr
    assert lc.state()["status"] == "created"


def test_kill_all_signals_every_process_in_the_cgroup(lc, bundle):
    # pid 1 of the pid namespace ignores TERM (no handler); its children do not.
    script = "sleep 100 & sleep 100 & wait; touch /tmp/children-gone; exec sleep 100"
    assert lc.create(writable(["sh", "-c", script])).returncode == 0
    assert lc("start", bundle.id).returncode == 0
    wait_for(lambda: len(json.loads(lc("ps", "--format", "json", bundle.id).stdout)) == 3)
    assert lc("kill", bundle.id, "TERM").returncode == 0  # init only: ignored
    time.sleep(0.2)
    assert len(json.loads(lc("ps", "--format", "json", bundle.id).stdout)) == 3
    assert lc("kill", "--all", bundle.id, "TERM").returncode == 0
    wait_for((bundle.path / "rootfs" / "tmp" / "children-gone").exists)
    assert json.loads(lc("ps", "--format", "json", bundle.id).stdout) == [lc.state()["pid"]]


def test_ps_and_list_formats(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    pid = lc.state()["pid"]
    assert json.loads(lc("ps", "--format", "json", bundle.id).stdout) == [pid]
    table = lc("ps", bundle.id).stdout.splitlines()
    assert table[0].split() == ["PID", "CMD"] and table[1].split()[0] == str(pid)
    assert lc("list", "-q").stdout == f"{bundle.id}\n"
    listed = json.loads(lc("list", "--format", "json").stdout)
    assert [(s["id"], s["pid"], s["status"]) for s in listed] == [(bundle.id, pid, "created")]
    rows = lc("list").stdout.splitlines()
    assert rows[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert rows[1].split()[:4] == [bundle.id, str(pid), "created", str(bundle.path)]


def test_list_under_a_root_that_is_a_file_fails_as_runc_and_a_missing_root_lists_none(tmp_path):
    """runc's list: a missing root is no containers; a root that is a regular file is an error (exit 1)."""
    root = tmp_path / "root"
    root.write_text("not a state directory")
    for args in (["list"], ["list", "-q"], ["list", "--format", "json"]):
        result = mrunc("--root", str(root), *args, private_mounts=False)
        assert (result.returncode, result.stdout) == (1, ""), result
        assert result.stderr.startswith(f"mrunc: --root {root}: not a directory; allowed: "), result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr  # one line, no traceback
    assert root.read_text() == "not a state directory"
    missing = tmp_path / "none"
    result = mrunc("--root", str(missing), "list", "--format", "json", private_mounts=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")
    assert not missing.exists()  # listing makes nothing


def test_pause_freezes_and_resume_thaws(lc, bundle):
    counter = bundle.path / "rootfs" / "tmp" / "count"
    script = "while true; do echo x >> /tmp/count; sleep 0.02; done"
    assert lc.create(writable(["sh", "-c", script])).returncode == 0
    assert lc("start", bundle.id).returncode == 0
    wait_for(counter.exists)
    assert lc("pause", bundle.id).returncode == 0
    if cgroup_layout() == "v2":
        assert "frozen 1" in (cgroup_dirs(bundle)[0] / "cgroup.events").read_text().splitlines()
    else:
        freezer = next(Path("/sys/fs/cgroup/freezer").glob(bundle.cgroup.lstrip("/")))
        assert (freezer / "freezer.state").read_text().strip() == "FROZEN"
    assert lc.state()["status"] == "paused"
    frozen_size = counter.stat().st_size
    time.sleep(0.3)
    assert counter.stat().st_size == frozen_size, "a paused container made progress"
    again = lc("pause", bundle.id)
    assert again.returncode == 1 and "it is paused" in again.stderr
    assert lc("resume", bundle.id).returncode == 0
    assert lc.state()["status"] == "running"
    wait_for(lambda: counter.stat().st_size > frozen_size)
    assert lc("delete", "--force", bundle.id).returncode == 0


def test_concurrent_starts_on_one_id_are_serialised(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: lc("start", bundle.id), range(6)))
    assert sorted(r.returncode for r in results) == [0, 1, 1, 1, 1, 1], [r.stderr for r in results]
    assert all("it is running" in r.stderr for r in results if r.returncode)
    assert lc.state()["status"] == "running"


def test_json_log_has_level_msg_time(lc, tmp_path):
    log = tmp_path / "log.json"
    result = lc("--log", str(log), "--log-format=json", "start", "nosuch")
    assert result.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == "container 'nosuch' does not exist"
    assert entry["time"].endswith("Z") and entry["time"][:4].isdigit()


def test_global_options_take_both_forms(lc, bundle, tmp_path):
    log = tmp_path / "log.txt"
    root = str(bundle.state_root)
    result = lc("--root=" + root, "--log", str(log), "--debug", "--systemd-cgroup", "state", "nosuch")
    assert result.returncode == 1
    assert 'level=error msg="container \'nosuch\' does not exist"' in log.read_text()


def test_create_with_systemd_cgroup_warns_and_uses_cgroupfs(lc, bundle):
    bundle.write(base_config(["sleep", "100"]))
    result = lc.detached("--systemd-cgroup", "create", "--bundle", str(bundle.path), bundle.id)
    assert result.returncode == 0
    assert "no systemd on this host; using cgroupfs" in lc.output.read_text()
    assert cgroup_dirs(bundle)


def test_a_created_container_whose_init_died_is_stopped_and_cannot_start(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    pid = lc.state()["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid))
    assert lc.state()["status"] == "stopped"
    failed = lc("start", bundle.id)
    assert failed.returncode == 1 and "it is stopped" in failed.stderr
    assert lc("delete", bundle.id).returncode == 0


def test_the_stored_plan_shows_the_wait_for_start(lc, bundle):
    assert lc.create(base_config(["sleep", "100"])).returncode == 0
    plan = json.loads((bundle.state_root / bundle.id / "plan.json").read_text())
    names = [o["op"] for o in plan["ops"]]
    fifo = str(bundle.state_root / bundle.id / "exec.fifo")
    assert plan["ops"][names.index("exec_fifo_create")]["args"]["path"] == fifo
    assert names.index("exec_fifo_create") < names.index("fork")
    assert plan["ops"][names.index("wait_start")]["args"]["path"] == fifo
    assert names.index("close_fds") < names.index("wait_start") < names.index("execve") == len(names) - 1


@pytest.mark.skipif(not shutil.which("flock"), reason="needs flock(1)")
def test_a_created_containers_init_holds_none_of_its_callers_fds(lc, bundle, tmp_path):
    """A harness runs `flock -x LOCK mrunc create ...`, then waits on LOCK: the lock is free once create returns
    (runc's waiting init holds none of its caller's fds). init keeps stdio and mrunc's own (the sync socket, the
    exec fifo): not the lock, nor the caller's pipe at 251."""
    lock = tmp_path / "LOCK"
    lock.touch()
    bundle.write(base_config(["sleep", "100"]))
    command = ["flock", "-x", str(lock), "unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc",
               "--root", str(bundle.state_root), "create", "--bundle", str(bundle.path), bundle.id]
    read, write = os.pipe()
    os.dup2(read, 251)
    try:
        with open(lc.output, "ab") as out:
            created = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(251,),
                                     timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    finally:
        for fd in (read, write, 251):
            os.close(fd)
    assert created.returncode == 0, lc.output.read_text()
    assert subprocess.run(["flock", "-n", "-x", str(lock), "true"], timeout=10).returncode == 0  # not held
    fd_dir = Path(f"/proc/{lc.state()['pid']}/fd")
    held = {int(fd.name): os.readlink(fd) for fd in fd_dir.iterdir()}
    assert held[0] == "/dev/null" and held[1] == held[2] == str(lc.output)
    others = sorted(target.split(":")[0] for fd, target in held.items() if fd > 2)
    assert others == sorted(["socket", str(bundle.state_root / bundle.id / "exec.fifo")]), held
    assert lc("start", bundle.id).returncode == 0
    assert lc("delete", "--force", bundle.id).returncode == 0


def test_debug_logs_the_created_container(lc, bundle, tmp_path):
    log = tmp_path / "debug.log"
    bundle.write(base_config(["sleep", "100"]))
    assert lc.detached("--debug", "--log", str(log), "create", "--bundle", str(bundle.path), bundle.id).returncode == 0
    assert f"level=debug msg=\"container '{bundle.id}' created: init pid {lc.state()['pid']}" in log.read_text()


def test_preserve_fds_passes_the_engines_fds_to_the_container(lc, bundle, tmp_path):
    """An engine passes fd 3 (here: a file) with --preserve-fds 1; the user process writes to it."""
    bundle.write(base_config(["sh", "-c", "echo through-fd-3 >&3"]))
    target = tmp_path / "fd3"
    result = lc.detached("run", "--detach", "--preserve-fds", "1", "--bundle", str(bundle.path), bundle.id,
                         fd3=str(target))
    assert result.returncode == 0, lc.output.read_text()
    lc.wait_status("stopped")
    assert target.read_text() == "through-fd-3\n"


def test_a_detached_terminal_needs_a_console_socket(lc, bundle):
    config = base_config(["true"])
    config["process"]["terminal"] = True
    assert lc.create(config).returncode == 1
    assert "/process/terminal: true needs --console-socket" in lc.output.read_text()
    assert not (bundle.state_root / bundle.id).exists()
