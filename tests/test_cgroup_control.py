"""pause/resume and kill --all through the container's cgroup (mrunc/executor/cgroup_control.py), for real on
this host's layout; tests/test_guest_v2.py runs them again on v2 (cgroup.freeze, cgroup.kill)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mrunc.compiler.compile import compile_config
from mrunc.executor import cgroup_control
from mrunc.executor.host import cgroup_layout
from mrunc.state import is_frozen
from tests.conftest import REPO, base_config
from tests.lifecycle_helpers import Lifecycle


def wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_freeze_stops_the_container_thaw_resumes_it_and_kill_all_ends_it(bundle, tmp_path):
    bundle.write(base_config(["sh", "-c", "while :; do echo tick; usleep 10000; done"]))
    dirs = cgroup_control.container_cgroups(compile_config(str(bundle.config_path), bundle.id))
    out = tmp_path / "out"
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc",
               "--root", str(bundle.state_root), "run", "--bundle", str(bundle.path), bundle.id]
    with open(out, "w") as stdout:
        proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        wait_for(lambda: out.stat().st_size > 0)
        cgroup_control.set_frozen(dirs, True)
        frozen_at = out.stat().st_size
        time.sleep(0.3)
        assert out.stat().st_size == frozen_at, "the container ran while frozen"
        cgroup_control.set_frozen(dirs, False)
        wait_for(lambda: out.stat().st_size > frozen_at)
        cgroup_control.kill_all(dirs)
        assert proc.wait(timeout=10) == 128 + 9, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()



def cgroup_dirs(bundle) -> list[str]:
    """The container's cgroup directories: one per v1 controller, or the one v2 directory."""
    root = Path("/sys/fs/cgroup")
    return [str(d) for d in (*root.glob(f"*{bundle.cgroup}"), *root.glob(bundle.cgroup.lstrip("/")))]


def start_four_processes(lc: Lifecycle) -> list[str]:
    """A started container of init and three children; returns its cgroup directories."""
    assert lc.create(base_config(["sh", "-c", "sleep 100 & sleep 100 & sleep 100 & exec sleep 100"])).returncode == 0
    assert lc("start", lc.bundle.id).returncode == 0
    dirs = cgroup_dirs(lc.bundle)
    wait_for(lambda: len(cgroup_control.tree_pids(dirs)) == 4)
    return dirs


def test_kill_all_kill_empties_the_cgroup_with_cgroup_kill_on_v2_and_delete_removes_it(lc, bundle, tmp_path):
    dirs = start_four_processes(lc)
    log = tmp_path / "kill.log"
    assert lc("--debug", "--log", str(log), "kill", "--all", bundle.id, "KILL").returncode == 0
    how = "cgroup.kill" if cgroup_layout() == "v2" else "freeze (/sys/fs/cgroup/freezer/"
    assert f"kill --all {bundle.id!r} signal 9: {how}" in log.read_text()
    wait_for(lambda: not cgroup_control.tree_pids(dirs))
    if cgroup_layout() == "v2":
        wait_for(lambda: "populated 0" in Path(dirs[0], "cgroup.events").read_text().splitlines())
    lc.wait_status("stopped")
    assert lc("delete", bundle.id).returncode == 0
    assert cgroup_dirs(bundle) == []


def test_freeze_signal_each_thaw_kills_every_process_without_cgroup_kill(lc, bundle):
    """The path for kernels before cgroup.kill (and for v1): freeze, SIGKILL each pid, thaw."""
    dirs = start_four_processes(lc)
    assert cgroup_control.signal_each(dirs, signal.SIGKILL).startswith("freeze (")
    wait_for(lambda: not cgroup_control.tree_pids(dirs))
    assert not is_frozen(dirs), "left frozen"
    lc.wait_status("stopped")


def test_delete_force_kills_a_running_container_and_removes_its_cgroup(lc, bundle, tmp_path):
    dirs = start_four_processes(lc)
    log = tmp_path / "delete.log"
    assert lc("--debug", "--log", str(log), "delete", "--force", bundle.id).returncode == 0
    how = "cgroup.kill" if cgroup_layout() == "v2" else "freeze ("
    assert f"delete {bundle.id!r}: killed what was left: {how}" in log.read_text()
    assert cgroup_dirs(bundle) == [] and not any(os.path.exists(d) for d in dirs)
