"""containerd 1.6's CRI plugin (what a kubelet talks to) in a sandbox of its own, and a CRI v1 client.

The client is generated from the vendored reference/cri/api.proto by grpcio-tools at run time, into a temp
dir: what the tests speak is always the proto in the repo, and the generated code always matches the protobuf
runtime installed beside it (checked-in code from another protoc would refuse to load under a newer runtime).
The pod sandbox image is a busybox image built here as an OCI archive and imported with ctr: nothing is pulled.
Pod networking is a CNI bridge (Debian's containernetworking-plugins) inside the sandbox's network namespace.
"""

import hashlib
import importlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from types import ModuleType

from tests.conftest import REFERENCE
from tests.engines import Sandbox

CNI_DIRS = ("/usr/lib/cni", "/opt/cni/bin")  # Debian's containernetworking-plugins, upstream's default
CNI_PLUGINS = ("bridge", "host-local", "loopback")
IMAGE = "localhost/mrunc-busybox:cri"
POD_SUBNET = "10.233.7.0/24"  # only inside the sandbox's network namespace
STREAM_PORT = 10010  # the streaming server, on 127.0.0.1 of the sandbox's network namespace
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
POD, CONTAINER, NODE = 0, 1, 2  # runtime.v1.NamespaceMode
# What a kubelet sends for a container that is not privileged (k8s.io/kubernetes securitycontext): containerd 1.6
# masks and makes read-only only the paths it is given.
MASKED_PATHS = ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"]
READONLY_PATHS = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# An app that ends on SIGTERM with a status of its own (pid 1 of its PID namespace, sh would ignore SIGTERM
# without the trap, and StopContainer would wait out its timeout and SIGKILL it).
TRAPPING = ["sh", "-c", "trap 'exit 7' TERM; echo started; sleep 1000 & wait"]
# The pause process of a pod sandbox: sleeps until killed (StopPodSandbox sends SIGKILL).
PAUSE = ["sleep", "2147483647"]


def cni_bin_dir() -> str | None:
    """Where the CNI plugins the tests need are installed, if they are."""
    for d in CNI_DIRS:
        if all(os.access(f"{d}/{name}", os.X_OK) for name in CNI_PLUGINS):
            return d
    return None


def load_api(out: Path) -> tuple[ModuleType, ModuleType]:
    """api_pb2 and api_pb2_grpc compiled from reference/cri/api.proto into `out`."""
    from grpc_tools import protoc  # a test dependency: imported only by the CRI tests

    out.mkdir(parents=True, exist_ok=True)
    proto_dir = REFERENCE / "cri"
    include = Path(protoc.__file__).parent / "_proto"  # protobuf's well-known types, shipped with grpc_tools
    status = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(proto_dir / "api.proto")])
    assert status == 0, f"protoc failed on {proto_dir / 'api.proto'}"
    sys.path.insert(0, str(out))  # api_pb2_grpc imports api_pb2 by its bare name
    try:
        for name in ("api_pb2", "api_pb2_grpc"):
            sys.modules.pop(name, None)
        return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(str(out))


def _blob(blobs: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def image_archive(rootfs: Path, dest: Path, name: str = IMAGE) -> Path:
    """An OCI image archive (one uncompressed layer: the rootfs) named `name`, for `ctr images import`."""
    layout = dest.with_suffix(".d")
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False)
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(blobs, layer.getvalue())}
    config = {"architecture": GOARCH.get(os.uname().machine, os.uname().machine), "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": PAUSE, "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(blobs, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     **_blob(blobs, json.dumps(manifest).encode()),
                     "annotations": {"io.containerd.image.name": name,
                                     "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest_desc]}))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    subprocess.run(["tar", "-C", str(layout), "-cf", str(dest), "."], check=True)
    shutil.rmtree(layout)
    return dest


def containerd_config(tmp: Path, socket_path: Path, handlers: dict[str, str], cni_bin: str) -> str:
    """containerd's config: its own root, state and sockets; the cri plugin with one runtime per handler
    (name -> BinaryName); restrict_oom_score_adj because the pod sandbox gets oom_score_adj -998 and root
    here lacks CAP_SYS_RESOURCE to lower it (docs/kubernetes.md)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runtimes = "".join(f"""
[{cri}.containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
""" for name, binary in handlers.items())
    return f"""version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{socket_path}"
[ttrpc]
  address = "{socket_path}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{tmp}/opt"
[{cri}]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "{STREAM_PORT}"
  enable_selinux = false
[{cri}.containerd]
  snapshotter = "native"
  default_runtime_name = "{next(iter(handlers))}"
[{cri}.cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{tmp}/cni"
  max_conf_num = 1
{runtimes}"""


def cni_config(subnet: str = POD_SUBNET) -> dict:
    return {"cniVersion": "0.4.0", "name": "mrunc-cri",
            "plugins": [{"type": "bridge", "bridge": "cri0", "isGateway": True, "ipMasq": False,
                         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                                  "routes": [{"dst": "0.0.0.0/0"}]}}]}


class CriContainerd:
    """containerd with the cri plugin in `sandbox`; `runtime` and `images` are the CRI v1 gRPC stubs."""

    def __init__(self, sandbox: Sandbox, tmp: Path, handlers: dict[str, str], image_tar: Path) -> None:
        import grpc  # a test dependency

        self.sandbox = sandbox
        self.tmp = tmp
        self.api, api_grpc = load_api(tmp / "cri-api")
        self.socket = tmp / "containerd.sock"
        (tmp / "cni").mkdir()
        (tmp / "cni" / "10-mrunc-cri.conflist").write_text(json.dumps(cni_config()))
        config = tmp / "containerd.toml"
        config.write_text(containerd_config(tmp, self.socket, handlers, cni_bin_dir() or CNI_DIRS[0]))
        self.log = open(tmp / "containerd.log", "w")
        self.daemon = subprocess.Popen(sandbox.command("containerd", "--config", str(config)), stdout=self.log,
                                       stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        self.runtime = api_grpc.RuntimeServiceStub(self.channel)
        self.images = api_grpc.ImageServiceStub(self.channel)
        self._wait_ready()
        imported = self.ctr("images", "import", "--snapshotter", "native", str(image_tar))
        assert imported.returncode == 0, imported.stderr

    def _wait_ready(self, seconds: float = 30) -> None:
        import grpc

        deadline = time.monotonic() + seconds
        while True:
            try:
                self.runtime.Version(self.api.VersionRequest(), timeout=2)
                return
            except grpc.RpcError:  # until the socket is served
                if time.monotonic() > deadline or self.daemon.poll() is not None:
                    log = (self.tmp / "containerd.log").read_text()
                    raise AssertionError(f"containerd did not start: {log[-2000:]}") from None
                time.sleep(0.1)

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.sandbox.run("ctr", "--address", str(self.socket), "-n", "k8s.io", *args, timeout=timeout)

    def stop(self) -> None:
        self.channel.close()
        self.daemon.terminate()
        self.daemon.wait(timeout=30)
        self.log.close()


class Pod:
    """One pod sandbox through the CRI, as a kubelet makes it (each container in its own PID namespace, IPC
    shared), in its own cgroup parent, with `handler` as its runtime."""

    def __init__(self, cri: CriContainerd, handler: str, cgroup_parent: str, network: int = POD) -> None:
        self.cri, self.api = cri, cri.api
        self.name = cgroup_parent.rsplit("/", 1)[-1]
        self.cgroup_parent = cgroup_parent
        self.log_dir = cri.tmp / "logs" / self.name
        self.namespaces = self.api.NamespaceOption(network=network, pid=CONTAINER, ipc=POD)
        self.config = self.api.PodSandboxConfig(  # a kubelet names no hostname for a pod on the node's network
            metadata=self.api.PodSandboxMetadata(name=self.name, uid=uuid.uuid4().hex, namespace="mrunc-test"),
            hostname=self.name if network != NODE else "", log_directory=str(self.log_dir),
            linux=self.api.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=self.api.LinuxSandboxSecurityContext(namespace_options=self.namespaces)))
        self.handler = handler
        self.id = ""

    def run(self) -> str:
        self.id = self.cri.runtime.RunPodSandbox(self.api.RunPodSandboxRequest(
            config=self.config, runtime_handler=self.handler), timeout=60).pod_sandbox_id
        return self.id

    def create(self, name: str, command: list[str], resources=None, **security) -> str:
        """CreateContainer; `security`: LinuxContainerSecurityContext fields beside the kubelet's defaults."""
        context = self.api.LinuxContainerSecurityContext(namespace_options=self.namespaces,
                                                         masked_paths=MASKED_PATHS, readonly_paths=READONLY_PATHS,
                                                         **security)
        config = self.api.ContainerConfig(
            metadata=self.api.ContainerMetadata(name=name), image=self.api.ImageSpec(image=IMAGE),
            command=command, log_path=f"{name}.log",
            linux=self.api.LinuxContainerConfig(security_context=context, resources=resources))
        return self.cri.runtime.CreateContainer(self.api.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config), timeout=60).container_id

    def start(self, name: str, command: list[str], **kwargs) -> str:
        container = self.create(name, command, **kwargs)
        self.cri.runtime.StartContainer(self.api.StartContainerRequest(container_id=container), timeout=60)
        return container

    def exec_sync(self, container: str, *command: str) -> tuple[int, str, str]:
        answer = self.cri.runtime.ExecSync(self.api.ExecSyncRequest(container_id=container, cmd=list(command),
                                                                    timeout=20), timeout=30)
        return answer.exit_code, answer.stdout.decode(), answer.stderr.decode()

    def status(self, container: str):
        return self.cri.runtime.ContainerStatus(self.api.ContainerStatusRequest(container_id=container),
                                                timeout=30).status

    def stop(self, container: str, timeout: int = 10) -> None:
        self.cri.runtime.StopContainer(self.api.StopContainerRequest(container_id=container, timeout=timeout),
                                       timeout=60)

    def remove(self, container: str) -> None:
        self.cri.runtime.RemoveContainer(self.api.RemoveContainerRequest(container_id=container), timeout=60)

    def stop_and_remove_pod(self) -> None:
        self.cri.runtime.StopPodSandbox(self.api.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout=60)
        self.cri.runtime.RemovePodSandbox(self.api.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout=60)
        self.id = ""


# The streaming server's WebSocket form of exec (k8s.io remotecommand, protocol v4.channel.k8s.io): every
# message starts with its channel's byte (0 stdin, 1 stdout, 2 stderr, 3 the final status as JSON).
def stream_exec(sandbox: Sandbox, url: str, stdin: bytes = b"", timeout: float = 20) -> dict:
    """Run an Exec URL's command to its end: {"stdout", "stderr", "status"} (status: the v4 JSON Status)."""
    host, port, path = _split_url(url)
    with _socket_in_netns(sandbox.holder.pid) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        key = "bXJ1bmMtY3JpLXRlc3Qta2V5"  # any 16 bytes, base64: the server only echoes a hash of it
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}==\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
        reader = sock.makefile("rb")
        status_line = reader.readline()
        assert b" 101 " in status_line, status_line
        while reader.readline() not in (b"\r\n", b""):
            pass
        if stdin:
            sock.sendall(_client_frame(b"\x00" + stdin))
        out = {1: b"", 2: b"", 3: b""}
        for message in _frames(reader):
            if message and message[0] in out:
                out[message[0]] += message[1:]
        status = json.loads(out[3]) if out[3] else {"status": "Success"}
        return {"stdout": out[1].decode(), "stderr": out[2].decode(), "status": status}


def _split_url(url: str) -> tuple[str, int, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname, parts.port or 80, parts.path + (f"?{parts.query}" if parts.query else "")


class _socket_in_netns:
    """A TCP socket made in another process's network namespace (setns(2) there and back on this thread)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> socket.socket:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
        try:
            assert libc.setns(target, 0x40000000) == 0, os.strerror(ctypes.get_errno())  # CLONE_NEWNET
            try:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                assert libc.setns(own, 0x40000000) == 0, os.strerror(ctypes.get_errno())
        finally:
            os.close(own)
            os.close(target)
        return self.sock

    def __exit__(self, *exc) -> None:
        self.sock.close()


def _client_frame(payload: bytes) -> bytes:
    """A masked binary frame (clients must mask)."""
    mask = os.urandom(4)
    head = bytes([0x82])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _frames(reader) -> list[bytes]:
    """The server's messages until it closes (server frames are unmasked; continuation frames joined)."""
    messages, partial = [], b""
    while True:
        head = reader.read(2)
        if len(head) < 2:
            return messages
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", reader.read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", reader.read(8))[0]
        payload = reader.read(length)
        if opcode == 0x8:  # close
            return messages
        if opcode in (0x0, 0x1, 0x2):
            partial += payload
            if head[0] & 0x80:  # FIN
                messages.append(partial)
                partial = b""
