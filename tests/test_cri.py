"""Kubernetes' view of mrunc: containerd 1.6's CRI plugin with mrunc as a runtime handler (issue 19), driven
as a kubelet drives it, over CRI v1 gRPC: pods with a CNI bridge network and with the host's (the sandbox's)
network, exec (ExecSync and the streaming server), CRI logs, a security context read back from inside, resource
updates read back from the cgroup files, and a pod that stops and is removed leaving nothing behind."""

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mrunc.executor.host import cgroup_layout
from tests.conftest import needs_binaries
from tests.cri import NODE, POD, POD_SUBNET, TRAPPING, CriContainerd, Pod, cni_bin_dir, image_archive, stream_exec
from tests.engines import SANDBOX_TOOLS, Sandbox, cgroup_parent, remove_cgroups, wait_for

pytest.importorskip("grpc", reason="grpcio is a test dependency (pip install -e '.[test]')")
pytest.importorskip("grpc_tools", reason="grpcio-tools is a test dependency (pip install -e '.[test]')")
pytestmark = [needs_binaries("containerd", "ctr", "containerd-shim-runc-v2", *SANDBOX_TOOLS),
              pytest.mark.skipif(cni_bin_dir() is None,
                                 reason="needs the CNI bridge, host-local and loopback plugins "
                                        "(Debian's containernetworking-plugins)")]

V2 = cgroup_layout() == "v2"
CGROUP = Path("/sys/fs/cgroup")
RUNC = shutil.which("runc")
CONTAINER_RUNNING, CONTAINER_EXITED = 1, 2  # runtime.v1.ContainerState
# The handlers a lifecycle runs under: mrunc, and runc beside it where it is installed (the behaviour to match).
HANDLERS = ["mrunc", pytest.param("runc", marks=pytest.mark.skipif(not RUNC, reason="no runc binary"))]
# A masked path this kernel has (a masked path that does not exist is left alone).
MASKED_FILE = next((p for p in ("/proc/keys", "/proc/timer_list", "/proc/kcore") if os.path.isfile(p)), None)
# A CRI log line: RFC 3339 time with nanoseconds, the stream, F (full line) or P (partial), the text.
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$")


@pytest.fixture(scope="module")
def cri(tmp_path_factory, busybox_rootfs):
    tmp = tmp_path_factory.mktemp("cri")
    image = image_archive(busybox_rootfs, tmp / "busybox-oci.tar")
    sandbox = Sandbox(tmp)
    engine = None
    try:
        engine = CriContainerd(sandbox, tmp, {"mrunc": str(sandbox.runtime), "runc": "runc"}, image)
        yield engine
    finally:
        if engine:
            engine.stop()
        sandbox.close()


@contextmanager
def pod(cri: CriContainerd, handler: str = "mrunc", network: int = POD):
    """A running pod; what the test did not remove is removed (StopPodSandbox stops its containers and
    RemovePodSandbox removes them), then nothing of it may be left."""
    baseline = sandbox_snapshot(cri)
    sandbox = Pod(cri, handler, cgroup_parent(f"pod-{uuid.uuid4().hex[:8]}"), network)
    sandbox.run()
    try:
        yield sandbox
    finally:
        if sandbox.id:
            sandbox.stop_and_remove_pod()
        assert leftovers(cri, baseline, sandbox) == {}
        assert remove_cgroups(sandbox.cgroup_parent) == []


def state_root(cri: CriContainerd) -> Path:
    """The runtime root the runc shim passes (--root), seen in the sandbox's mount namespace."""
    return Path(f"/proc/{cri.sandbox.holder.pid}/root/run/containerd/runc/k8s.io")


def sandbox_snapshot(cri: CriContainerd) -> dict[str, set[str]]:
    """What a pod could leave in the sandbox: processes (besides the holder and containerd: shims, containers,
    runtimes), mounts in the sandbox's mount namespace, and the runtime's state dirs."""
    holder = cri.sandbox.holder.pid
    procs = {f"{pid} {_cmdline(pid)}" for pid in cri.sandbox._members()
             if pid not in (holder, cri.daemon.pid) and _alive(pid)}
    mounts = {line.split()[4] for line in Path(f"/proc/{holder}/mountinfo").read_text().splitlines()}
    root = state_root(cri)
    states = {p.name for p in root.iterdir()} if root.is_dir() else set()
    return {"processes": procs, "mounts": mounts, "states": states}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].startswith(" Z")
    except OSError:
        return False


def leftovers(cri: CriContainerd, baseline: dict[str, set[str]], sandbox: Pod) -> dict[str, list[str]]:
    """What the pod left, once its shim has had a moment to exit; plus any cgroup under its parent."""
    def extra() -> dict[str, list[str]]:
        now = sandbox_snapshot(cri)
        left = {kind: sorted(now[kind] - baseline[kind]) for kind in now if now[kind] - baseline[kind]}
        cgroups = sorted(str(p) for p in CGROUP.glob(f"*{sandbox.cgroup_parent}/*") if p.is_dir())
        return {**left, **({"cgroups": cgroups} if cgroups else {})}
    wait_for(lambda: not extra(), seconds=10)
    return extra()


def runtime_calls(cri: CriContainerd, container: str) -> list[str]:
    """The mrunc commands the shim ran for one container (its id ends each one)."""
    return [call.split(" json ", 1)[-1] for call in cri.sandbox.calls() if container in call]


def container_cgroup(sandbox: Pod, container: str, controller: str) -> Path:
    """containerd's cgroupfs layout: the pod's parent, then the container's id."""
    path = sandbox.cgroup_parent.lstrip("/") + "/" + container
    return CGROUP / path if V2 else CGROUP / controller / path


@pytest.mark.parametrize("handler", HANDLERS)
def test_pod_with_a_cni_bridge_network_runs_execs_stops_and_is_removed(cri, handler):
    with pod(cri, handler) as sandbox:
        pod_ip = cri.runtime.PodSandboxStatus(cri.api.PodSandboxStatusRequest(pod_sandbox_id=sandbox.id),
                                              timeout=30).status.network.ip
        container = sandbox.start("app", TRAPPING)
        assert sandbox.status(container).state == CONTAINER_RUNNING
        assert {sandbox.id, container} <= {p.name for p in state_root(cri).iterdir()}  # what must go, is there
        assert container_cgroup(sandbox, container, "memory").is_dir()

        code, out, err = sandbox.exec_sync(container, "sh", "-c", "ip -4 -o addr show eth0; readlink /proc/self/ns/net")
        assert code == 0, err
        assert f"inet {pod_ip}/" in out and pod_ip.startswith(POD_SUBNET.rsplit(".", 1)[0] + "."), out
        assert out.split()[-1] != os.readlink(f"/proc/{cri.sandbox.holder.pid}/ns/net")  # the pod's own netns
        gateway = POD_SUBNET.rsplit(".", 1)[0] + ".1"
        assert sandbox.exec_sync(container, "ping", "-c", "1", "-W", "5", gateway)[0] == 0  # the bridge answers
        assert sandbox.exec_sync(container, "sh", "-c", "echo oops >&2; exit 3") == (3, "", "oops\n")

        sandbox.stop(container)
        status = sandbox.status(container)
        assert (status.state, status.exit_code) == (CONTAINER_EXITED, 7)  # SIGTERM reached the trap
        sandbox.remove(container)
        sandbox.stop_and_remove_pod()
    if handler == "mrunc":
        calls = runtime_calls(cri, container)
        assert calls[0].startswith("create ") and "start " + container in calls and "delete " + container in calls


@pytest.mark.parametrize("handler", HANDLERS)
def test_pod_with_host_network_runs_execs_stops_and_is_removed(cri, handler):
    with pod(cri, handler, network=NODE) as sandbox:
        container = sandbox.start("app", TRAPPING)
        code, out, err = sandbox.exec_sync(container, "readlink", "/proc/self/ns/net")
        assert code == 0, err
        assert out.strip() == os.readlink(f"/proc/{cri.sandbox.holder.pid}/ns/net")  # the node's (sandbox's) netns
        sandbox.stop(container)
        assert sandbox.status(container).exit_code == 7
        sandbox.remove(container)
        sandbox.stop_and_remove_pod()


def test_stop_pod_sandbox_stops_its_running_containers_then_removes_them(cri):
    with pod(cri) as sandbox:
        containers = [sandbox.start(f"c{i}", TRAPPING) for i in range(2)]
        sandbox.stop_and_remove_pod()  # a kubelet deleting a pod whose containers still run
        listed = cri.runtime.ListContainers(cri.api.ListContainersRequest(), timeout=30).containers
        assert not {c.id for c in listed} & set(containers)


def test_exec_through_the_streaming_server(cri):
    with pod(cri) as sandbox:
        container = sandbox.start("app", TRAPPING)
        url = cri.runtime.Exec(cri.api.ExecRequest(
            container_id=container, cmd=["sh", "-c", "read line; echo got $line; echo to stderr >&2; exit 5"],
            stdin=True, stdout=True, stderr=True), timeout=30).url
        result = stream_exec(cri.sandbox, url, stdin=b"hello\n")
        assert (result["stdout"], result["stderr"]) == ("got hello\n", "to stderr\n")
        assert result["status"]["status"] == "Failure"
        assert {"message": "5", "reason": "ExitCode"} in result["status"]["details"]["causes"], result["status"]
        url = cri.runtime.Exec(cri.api.ExecRequest(container_id=container, cmd=["id", "-u"], stdout=True),
                               timeout=30).url
        assert stream_exec(cri.sandbox, url) == {"stdout": "0\n", "stderr": "", "status": {"metadata": {},
                                                                                          "status": "Success"}}


def log_time(stamp: str) -> datetime:
    """A CRI log line's RFC 3339 time (Go's RFC3339Nano: up to 9 fraction digits, trailing zeros dropped)."""
    stamp = re.sub(r"\.(\d+)", lambda m: "." + m[1][:6].ljust(6, "0"), stamp)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_container_logs_are_cri_log_lines_at_the_cri_log_path(cri):
    before = datetime.now(UTC)
    with pod(cri) as sandbox:
        container = sandbox.start("logger", ["sh", "-c", "echo one; echo two >&2; printf 'no newline'"])
        assert wait_for(lambda: sandbox.status(container).state == CONTAINER_EXITED)
        path = Path(sandbox.status(container).log_path)
        assert path == sandbox.log_dir / "logger.log"
        lines = [LOG_LINE.match(line) for line in path.read_text().splitlines()]
        assert all(lines), path.read_text()
        assert sorted((m[2], m[3], m[4]) for m in lines) == [
            ("stderr", "F", "two"), ("stdout", "F", "one"), ("stdout", "P", "no newline")]
        assert all(before <= log_time(m[1]) <= datetime.now(UTC) for m in lines), path.read_text()


# What the security context should change, each read from inside by a shell command.
PROBES = {"uid": "id -u", "gid": "id -g", "groups": "id -G",
          "status": "grep -E '^(Cap(Bnd|Eff|Prm|Amb)|NoNewPrivs|Seccomp):' /proc/self/status | tr '\\t\\n' ' '",
          "rootfs": "touch /rootfs-write 2>&1 || true", "tmp": "touch /tmp/x 2>&1 && echo writable",
          "masked": f"stat -c '%F %t:%T' {MASKED_FILE or '/proc/keys'}",  # /dev/null bound over it
          "proc_sys": "awk '$5 == \"/proc/sys\" {print $6}' /proc/self/mountinfo",  # its mount options
          "devices": "ls /dev | tr '\\n' ' '"}


def security_readings(sandbox: Pod, container: str) -> dict[str, str]:
    script = "; ".join(f"echo {name}=$({command})" for name, command in PROBES.items())
    code, out, err = sandbox.exec_sync(container, "sh", "-c", script)
    assert code == 0, err
    return dict(line.split("=", 1) for line in out.splitlines())


def test_security_context_is_read_back_from_inside(cri):
    with pod(cri) as sandbox:
        context = {"run_as_user": cri.api.Int64Value(value=1000), "run_as_group": cri.api.Int64Value(value=1000),
                   "readonly_rootfs": True, "privileged": False,
                   "capabilities": cri.api.Capability(drop_capabilities=["ALL"],
                                                      add_capabilities=["NET_BIND_SERVICE", "CHOWN"]),
                   "seccomp": cri.api.SecurityProfile(profile_type=0)}  # RuntimeDefault
        container = sandbox.start("secure", TRAPPING, **context)
        seen = security_readings(sandbox, container)
        assert (seen["uid"], seen["gid"]) == ("1000", "1000")
        status = dict(zip(seen["status"].split()[::2], seen["status"].split()[1::2], strict=True))
        assert status["CapBnd:"] == f"{(1 << 10) | (1 << 0):016x}"  # NET_BIND_SERVICE (10) and CHOWN (0) only
        assert status["Seccomp:"] == "2" and status["NoNewPrivs:"] == "0"  # filtered; allowPrivilegeEscalation
        assert "Read-only file system" in seen["rootfs"]
        assert "Read-only file system" in seen["tmp"]  # no writable layer anywhere
        if MASKED_FILE:
            assert seen["masked"] == "character special file 1:3"  # masked with /dev/null
        assert seen["proc_sys"].split(",")[0] == "ro"
        assert "sda" not in seen["devices"].split() and "mem" not in seen["devices"].split()  # not privileged
        if RUNC:  # the same context through runc reads the same
            with pod(cri, "runc") as runc_sandbox:
                twin = runc_sandbox.start("secure", TRAPPING, **context)
                assert security_readings(runc_sandbox, twin) == seen


def test_update_container_resources_writes_the_cgroup_files(cri):
    mib = 2**20
    with pod(cri) as sandbox:
        resources = cri.api.LinuxContainerResources(memory_limit_in_bytes=200 * mib, cpu_shares=512,
                                                    cpu_period=100000, cpu_quota=20000)
        container = sandbox.start("app", TRAPPING, resources=resources)
        memory = container_cgroup(sandbox, container, "memory")
        cpu = container_cgroup(sandbox, container, "cpu")
        if V2:
            assert (memory / "memory.max").read_text().strip() == str(200 * mib)
        else:
            assert (memory / "memory.limit_in_bytes").read_text().strip() == str(200 * mib)
        cri.runtime.UpdateContainerResources(cri.api.UpdateContainerResourcesRequest(
            container_id=container, linux=cri.api.LinuxContainerResources(
                memory_limit_in_bytes=100 * mib, cpu_shares=256, cpu_period=200000, cpu_quota=50000)), timeout=60)
        if V2:
            assert (memory / "memory.max").read_text().strip() == str(100 * mib)
            assert (cpu / "cpu.max").read_text().split() == ["50000", "200000"]
        else:
            assert (memory / "memory.limit_in_bytes").read_text().strip() == str(100 * mib)
            assert (cpu / "cpu.shares").read_text().strip() == "256"
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (cpu / "cpu.cfs_period_us").read_text().strip() == "200000"
        assert any(call.startswith("update ") for call in runtime_calls(cri, container))
        assert sandbox.exec_sync(container, "true")[0] == 0  # still running, still reachable


def test_a_pod_that_fails_to_start_reports_mrunc_s_error_and_leaves_nothing(cri):
    """The shim gives the pause container's create a read-only /dev/null as stderr: mrunc's error must still reach
    the kubelet, through the --log file the shim reads (it read 'unable to retrieve OCI runtime error' before)."""
    import grpc

    baseline = sandbox_snapshot(cri)
    sandbox = Pod(cri, "mrunc", cgroup_parent(f"pod-{uuid.uuid4().hex[:8]}"))
    with cri.sandbox.runtime_env(MRUNC_FAULT_AT="5"), pytest.raises(grpc.RpcError) as failed:
        sandbox.run()
    assert "fault injected by MRUNC_FAULT_AT" in failed.value.details(), failed.value.details()
    assert leftovers(cri, baseline, sandbox) == {}  # containerd undid the sandbox, mrunc its container
    assert remove_cgroups(sandbox.cgroup_parent) == []
