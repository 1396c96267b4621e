"""containerd 1.6 + ctr with mrunc as the runc binary: run --rm, and run -d with task exec/ps/kill/delete."""

import subprocess
import time
import uuid

import pytest

from tests.conftest import needs_binaries
from tests.engines import SANDBOX_TOOLS, Sandbox, cgroup_parent, remove_cgroups, wait_for

pytestmark = needs_binaries("containerd", "ctr", "containerd-shim-runc-v2", *SANDBOX_TOOLS)


class Containerd:
    """A containerd of our own: root, state dir and sockets in the temp dir, no CRI, in the sandbox."""

    def __init__(self, sandbox: Sandbox, tmp) -> None:
        self.sandbox = sandbox
        self.socket = tmp / "containerd.sock"
        config = tmp / "containerd.toml"
        config.write_text(f"""version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{tmp}/opt"
""")
        self.log = open(tmp / "containerd.log", "w")
        self.daemon = subprocess.Popen(sandbox.command("containerd", "--config", str(config)), stdout=self.log,
                                       stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self.ctr("version").returncode != 0:
            assert time.monotonic() < deadline and self.daemon.poll() is None, "containerd did not start"
            time.sleep(0.1)
        self.cgroup_parent = ""

    def ctr(self, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return self.sandbox.run("ctr", "--address", str(self.socket), *args, timeout=timeout, **kwargs)

    def run(self, options: list[str], rootfs, container_id: str, *command: str) -> subprocess.CompletedProcess:
        """`ctr run` of a rootfs directory with mrunc as the runc binary, in this test's cgroup parent."""
        return self.ctr("run", "--runc-binary", str(self.sandbox.runtime), "--cgroup",
                        f"{self.cgroup_parent}/{container_id}", "--env", "PATH=/bin", *options, "--rootfs",
                        str(rootfs), container_id, *command)

    def stop(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def containerd_engine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("containerd")
    sandbox = Sandbox(tmp)
    engine = None
    try:
        engine = Containerd(sandbox, tmp)
        yield engine
    finally:
        if engine:
            engine.stop()
        sandbox.close()


@pytest.fixture
def containerd(containerd_engine):
    containerd_engine.cgroup_parent = cgroup_parent(f"ctr-{uuid.uuid4().hex[:8]}")
    yield containerd_engine
    for task in containerd_engine.ctr("task", "ls", "-q").stdout.split():
        containerd_engine.ctr("task", "delete", "--force", task)
    for container in containerd_engine.ctr("container", "ls", "-q").stdout.split():
        containerd_engine.ctr("container", "delete", container)
    assert remove_cgroups(containerd_engine.cgroup_parent) == []


@pytest.fixture
def rootfs(tmp_path, busybox_rootfs):
    """A writable copy of the busybox rootfs (ctr mounts nothing over a --rootfs directory)."""
    root = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(root)], check=True)
    return root


def test_ctr_run_rm(containerd, rootfs):
    result = containerd.run(["--rm"], rootfs, "once", "sh", "-c", "echo hi from pid $$; exit 3")
    assert result.stdout == "hi from pid 1\n", result.stderr
    assert result.returncode == 3
    calls = containerd.sandbox.calls()
    assert any("--log-format json" in c and " create " in c for c in calls), calls


def test_ctr_run_detached_then_task_exec_ps_kill_delete(containerd, rootfs):
    started = containerd.run(["-d"], rootfs, "box", "sh", "-c", "trap 'exit 9' TERM; while true; do sleep 0.1; done")
    assert started.returncode == 0, started.stderr

    # The pause: containerd 1.6's shim drops the exit of an exec'd process that ends before it has read the
    # pid file (fixed in later containerd); mrunc holds the process until it has exited, the rest is the shim's.
    out = containerd.ctr("task", "exec", "--exec-id", "probe", "box", "sh", "-c",
                         "sleep 0.2; cat /proc/1/cmdline; exit 4")
    assert out.returncode == 4, out.stderr
    assert "while true" in out.stdout  # pid 1 of the namespace it joined is the container's init
    assert any(" exec " in c and "--process" in c for c in containerd.sandbox.calls())

    ps = containerd.ctr("task", "ps", "box")
    assert ps.returncode == 0, ps.stderr
    tasks = containerd.ctr("task", "ls").stdout.split()  # TASK PID STATUS, then box <pid> RUNNING
    assert tasks[3:] == ["box", tasks[4], "RUNNING"]
    assert int(tasks[4]) in [int(line.split()[0]) for line in ps.stdout.splitlines()[1:]], ps.stdout

    assert containerd.ctr("task", "kill", "box").returncode == 0
    assert wait_for(lambda: "STOPPED" in containerd.ctr("task", "ls").stdout)
    deleted = containerd.ctr("task", "delete", "box")
    assert deleted.returncode == 0, deleted.stderr
    assert "exit code 9" in deleted.stderr  # the status the trapped TERM exited with reached containerd
    assert containerd.ctr("container", "delete", "box").returncode == 0

