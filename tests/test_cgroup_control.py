"""pause/resume and kill --all through the container's cgroup (mrunc/executor/cgroup_control.py), for real on
this host's layout; tests/test_guest_v2.py runs them again on v2 (cgroup.freeze, cgroup.kill)."""

import os
import subprocess
import sys
import time

from mrunc.compiler.compile import compile_config
from mrunc.executor import cgroup_control
from tests.conftest import REPO, base_config


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
