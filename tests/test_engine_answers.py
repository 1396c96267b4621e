"""kill and delete of a container that has stopped or is gone answer as runc 1.1 does, because engines parse
those answers (docs/engines.md): the same scenario runs on a real mrunc container and, where /usr/bin/runc
exists, on a real runc container from the same bundle, and each answer is classified as containerd's runc
shim and podman classify it."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import base_config
from tests.lifecycle_helpers import Lifecycle, wait_for

RUNC = shutil.which("runc")
# Every number, and every name both know (runc has no SIGRTMIN/SIGRTMAX names), with and without SIG.
EVERY_SIGNAL = [str(n) for n in range(signal.NSIG)] + \
    [s.name for s in signal.Signals if not s.name.startswith("SIGRT")] + ["term", "HUP", "usr1"]


def containerd_kill_answer(returncode: int, output: str) -> str:
    """containerd's runc shim, checkKillError (pkg/process/utils.go): what a failed kill means to it."""
    if returncode == 0:
        return "ok"
    if ("os: process already finished" in output or "container not running" in output
            or "no such process" in output.lower()):
        return "process already finished"  # errdefs.ErrNotFound: the stop goes on
    if "does not exist" in output:
        return "no such container"  # errdefs.ErrNotFound
    return "unknown error after kill"  # the error issue 19 saw: the pod could never be stopped


def podman_hides(output: str) -> bool:
    """podman's StopContainer drops stderr lines of a kill that mean 'already stopped'; others are shown."""
    return all("container not running" in line or "No such process" in line
               for line in output.splitlines() if line)


def containerd_delete_answer(returncode: int, output: str) -> str:
    """containerd's Init.delete: a runtime that no longer knows the container is not an error."""
    return "ok" if returncode == 0 or "does not exist" in output else "failed to delete task"


class Runtime:
    """One runtime's CLI on the test's bundle: mrunc through Lifecycle, runc with its own state root."""

    def __init__(self, name: str, bundle, tmp: Path) -> None:
        self.name, self.bundle = name, bundle
        self.lc = Lifecycle(bundle, tmp)
        self.root = bundle.state_root if name == "mrunc" else tmp / "runc-state"

    def __call__(self, *args: str) -> tuple[int, str]:
        if self.name == "mrunc":
            result = self.lc(*args)
        else:
            result = subprocess.run(["unshare", "-m", "--propagation", "private", RUNC, "--root", str(self.root),
                                     *args], capture_output=True, text=True, timeout=60, cwd=self.bundle.path,
                                    stdin=subprocess.DEVNULL)
        return result.returncode, result.stdout + result.stderr

    def run_detached(self, config: dict) -> None:
        self.bundle.write(config)
        if self.name == "mrunc":
            assert self.lc.create(config).returncode == 0, self.lc.output.read_text()
            assert self.lc("start", self.bundle.id).returncode == 0
        else:
            with open(self.lc.output, "ab") as out:  # runc -d keeps the container's stdio: never a pipe
                subprocess.run(["unshare", "-m", "--propagation", "private", RUNC, "--root", str(self.root), "run",
                                "-d", "--bundle", str(self.bundle.path), self.bundle.id], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=out, timeout=60, check=True)

    def status(self) -> str:
        code, output = self("state", self.bundle.id)
        return json.loads(output)["status"] if code == 0 else "gone"

    def stopped(self) -> None:
        """Run a container and drive it to stopped (init killed), its cgroup still there."""
        self.run_detached(base_config(["sleep", "1000"]))
        assert self("kill", self.bundle.id, "KILL")[0] == 0
        wait_for(lambda: self.status() == "stopped")

    def cleanup(self) -> None:
        self("delete", "--force", self.bundle.id)


RUNTIMES = ["mrunc", pytest.param("runc", marks=pytest.mark.skipif(not RUNC, reason="no runc binary"))]


@pytest.fixture(params=RUNTIMES)
def runtime(request, bundle, tmp_path):
    rt = Runtime(request.param, bundle, tmp_path)
    yield rt
    rt.cleanup()


def test_kill_of_a_stopped_container_is_not_running_for_every_signal(runtime, bundle):
    runtime.stopped()
    for sig in EVERY_SIGNAL:
        code, output = runtime("kill", bundle.id, sig)
        assert code == 1, (sig, output)
        assert "container not running" in output, (sig, output)
        assert containerd_kill_answer(code, output) == "process already finished"
        assert podman_hides(output), (sig, output)
    assert runtime.status() == "stopped"


def test_kill_all_of_a_stopped_container_succeeds_for_every_signal(runtime, bundle):
    runtime.stopped()
    for sig in EVERY_SIGNAL:
        code, output = runtime("kill", "--all", bundle.id, sig)
        assert (code, containerd_kill_answer(code, output)) == (0, "ok"), (sig, output)
    assert runtime("kill", "-a", bundle.id)[0] == 0  # SIGTERM by default
    assert runtime.status() == "stopped"


def test_kill_all_of_a_stopped_container_whose_cgroup_is_gone_succeeds(runtime, bundle):
    runtime.stopped()
    for d in sorted(Path("/sys/fs/cgroup").glob(f"**{bundle.cgroup}"), key=lambda p: -len(p.parts)):
        d.rmdir()  # empty: its only process was killed
    assert runtime("kill", "--all", bundle.id, "KILL")[0] == 0
    assert runtime("kill", "--all", bundle.id, "TERM")[0] == 0
    assert runtime("delete", bundle.id)[0] == 0


def test_kill_of_an_unknown_container_does_not_exist_for_every_signal(runtime):
    for args in [["kill", "nosuch", s] for s in ("TERM", "KILL", "0", "9", "SIGHUP")] + \
            [["kill", "--all", "nosuch", "KILL"], ["kill", "nosuch"], ["kill", "nosuch", "NOPE"]]:
        code, output = runtime(*args)
        assert code == 1 and "does not exist" in output, (args, output)
        assert containerd_kill_answer(code, output) == "no such container"


def test_kill_of_a_stopped_container_with_a_bad_signal_fails(runtime, bundle):
    runtime.stopped()
    code, output = runtime("kill", bundle.id, "NOPE")
    assert code == 1 and "NOPE" in output
    assert "container not running" not in output  # the signal is read before the status, as runc does


def test_delete_of_a_stopped_container_then_of_the_gone_one(runtime, bundle):
    runtime.stopped()
    assert runtime("delete", bundle.id) == (0, "")
    code, output = runtime("delete", bundle.id)
    assert code == 1 and "does not exist" in output
    assert containerd_delete_answer(code, output) == "ok"
    assert runtime("delete", "--force", bundle.id) == (0, "")
    code, output = runtime("kill", bundle.id, "KILL")
    assert containerd_kill_answer(code, output) == "no such container"
    assert not list(Path("/sys/fs/cgroup").glob(f"**{bundle.cgroup}"))


def test_delete_force_of_a_stopped_container_succeeds(runtime, bundle):
    runtime.stopped()
    assert runtime("delete", "--force", bundle.id) == (0, "")
    assert runtime.status() == "gone"


def test_stopped_kill_is_logged_as_an_error_the_shim_reads(runtime, bundle, tmp_path):
    """containerd passes --log FILE --log-format json and reads the last error's msg (getLastRuntimeError)."""
    runtime.stopped()
    log = tmp_path / f"{runtime.name}-log.json"
    code, _ = runtime("--log", str(log), "--log-format", "json", "kill", bundle.id, "15")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [e["msg"] for e in entries if e["level"] == "error"]
    assert code == 1 and errors and "container not running" in errors[-1]


def test_kill_of_a_paused_container_with_sigkill_stops_it(runtime, bundle):
    """runc thaws a paused container for SIGKILL (on v1 a frozen process dies only once thawed)."""
    runtime.run_detached(base_config(["sleep", "1000"]))
    assert runtime("pause", bundle.id)[0] == 0
    assert runtime.status() == "paused"
    assert runtime("kill", bundle.id, "KILL")[0] == 0
    wait_for(lambda: runtime.status() == "stopped")


def test_kill_0_checks_a_running_container(runtime, bundle):
    runtime.run_detached(base_config(["sleep", "1000"]))
    assert runtime("kill", bundle.id, "0")[0] == 0
    assert runtime.status() == "running"
    assert os.path.isdir(runtime.root)


# The real shim: containerd 1.6's runc shim drives mrunc (tests/test_containerd.py sets it up in a sandbox).
from tests.test_containerd import containerd, containerd_engine, rootfs  # noqa: E402, F401 (fixtures)


def test_containerd_kill_of_a_stopped_task_is_already_finished_and_it_can_be_deleted(containerd, rootfs):  # noqa: F811
    """Issue 19's StopContainer: once the container has exited, the shim's next kill (every signal, --all too) must
    read as 'process already finished', not 'unknown error after kill', and the task must still delete."""
    started = containerd.run(["-d"], rootfs, "gone", "sleep", "1000")
    assert started.returncode == 0, started.stderr
    assert containerd.ctr("task", "kill", "--signal", "SIGKILL", "gone").returncode == 0
    wait_for(lambda: "STOPPED" in containerd.ctr("task", "ls").stdout)
    for args in (["--signal", "SIGTERM"], ["--signal", "SIGKILL"], ["--signal", "SIGHUP"]):
        again = containerd.ctr("task", "kill", *args, "gone")
        assert "unknown error after kill" not in again.stderr, again.stderr
        assert again.returncode == 0 or "process already finished" in again.stderr, again.stderr
    kills = [c for c in containerd.sandbox.calls() if " kill " in c]
    assert len(kills) >= 4, containerd.sandbox.calls()  # the shim asked mrunc each time
    deleted = containerd.ctr("task", "delete", "gone")
    assert deleted.returncode == 0, deleted.stderr
    assert containerd.ctr("container", "delete", "gone").returncode == 0
