"""Shared fixtures: a busybox rootfs, bundles, running mrunc, and the check that a test left the host as it
found it (mounts, cgroups, processes, state dirs).

Every container test runs mrunc inside `unshare -m --propagation private`, so even a bug that mounted in
the runtime's own namespace could not reach the host's mount table.
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "reference"  # configs real engines wrote and the OCI spec's schemas and examples (README there)
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
TEST_CGROUP_PARENT = f"mrunc-test-{os.getpid()}"  # one per test session: sessions may run side by side
# The session's own seccomp filter cache (compiler/seccomp_cache.py), inherited by every mrunc it runs: nothing is
# written to the host's /var/cache/mrunc, and a cache test starts from a known state. Removed at session end.
SECCOMP_CACHE = tempfile.mkdtemp(prefix="mrunc-seccomp-cache-")
os.environ["MRUNC_SECCOMP_CACHE"] = SECCOMP_CACHE


# What a test needs of the machine, checked where it is used: a test skips, saying what is missing, rather than fail on
# a host without it (a clean clone on a fresh machine must pass). Binaries come with scripts/setup.sh's apt packages.
def needs_binaries(*names: str) -> pytest.MarkDecorator:
    missing = [name for name in names if not shutil.which(name)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (not installed on this host)")


def needs_machine(*machines: str) -> pytest.MarkDecorator:
    machine = os.uname().machine
    return pytest.mark.skipif(machine not in machines, reason=f"needs a {' or '.join(machines)} host, not {machine}")


def child_cgroup_offers(file: str) -> bool:
    """Whether a new cgroup here has `file` ("CONTROLLER/FILE" on v1, "FILE" on v2): what the kernel offers (the swap
    files need swap accounting, the weight files an I/O scheduler with them); the root cgroup lacks some of them."""
    where, _, name = file.rpartition("/")
    parent = Path("/sys/fs/cgroup", where)
    if not parent.is_dir():
        return False
    probe = parent / f"{TEST_CGROUP_PARENT}-probe"
    probe.mkdir()
    try:
        return (probe / name).exists()
    finally:
        probe.rmdir()


def swap_accounting() -> bool:
    """The kernel accounts swap per cgroup (v1: memory.memsw.*, v2: memory.swap.*; CONFIG_MEMCG_SWAP, swapaccount)."""
    v2 = not Path("/sys/fs/cgroup/memory").is_dir() and Path("/sys/fs/cgroup/cgroup.controllers").exists()
    return child_cgroup_offers("memory.swap.max" if v2 else "memory/memory.memsw.limit_in_bytes")


@pytest.fixture
def swap_accounted() -> None:
    """For tests that set a swap limit: skip where the kernel cannot take one."""
    if not swap_accounting():
        pytest.skip("the kernel does not account swap per cgroup here (no memory.memsw.* / memory.swap.* files)")


def base_config(args: list[str]) -> dict:
    """A small, real config: the runc spec's shape, no terminal, our command."""
    config = json.loads((REFERENCE / "configs" / "runc-spec.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    if os.environ.get("MRUNC_TEST_CONTAINER_ENV"):  # set in the cgroup v2 guest only (tests/guest/init.sh)
        config["process"]["env"].append(os.environ["MRUNC_TEST_CONTAINER_ENV"])
    return config


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """A busybox-static rootfs, made once; bundles hard-link its files."""
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "root", "home/user"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    subprocess.run([str(root / "bin" / "busybox"), "--install", "-s", str(root / "bin")], check=True)
    for link in (root / "bin").iterdir():  # --install links to the absolute busybox path: make them relative
        if link.is_symlink():
            link.unlink()
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    (root / "tmp").chmod(0o1777)
    return root


class Bundle:
    def __init__(self, path: Path, state_root: Path, cgroup: str) -> None:
        self.path = path
        self.state_root = state_root
        self.cgroup = cgroup
        self.id = cgroup.rsplit("/", 1)[-1]

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def write(self, config: dict) -> Path:
        config = copy.deepcopy(config)
        config["root"]["path"] = "rootfs"
        config.setdefault("linux", {}).setdefault("cgroupsPath", self.cgroup)
        self.config_path.write_text(json.dumps(config, indent=1))
        return self.config_path


def mrunc(*args: str, input: str | None = None, timeout: float = 60, private_mounts: bool = True,
          env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the mrunc CLI from this checkout, as root, in a private mount namespace; `env` adds variables."""
    command = [sys.executable, "-m", "mrunc", *args]
    if private_mounts:
        command = ["unshare", "-m", "--propagation", "private", *command]
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(REPO))
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout, env=env,
                          **kwargs)


@pytest.fixture
def bundle(tmp_path, busybox_rootfs) -> Bundle:
    root = tmp_path / "bundle" / "rootfs"
    shutil.copytree(busybox_rootfs, root, symlinks=True, copy_function=os.link)
    return Bundle(tmp_path / "bundle", tmp_path / "state", f"/{TEST_CGROUP_PARENT}/t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def userns_bundle(busybox_rootfs) -> Bundle:
    """A bundle a user namespace's root (an unprivileged host uid) can reach: pytest's tmp dirs are 0700."""
    if Path("/proc/sys/user/max_user_namespaces").read_text().strip() == "0":
        pytest.skip("user namespaces are off on this host (user.max_user_namespaces = 0)")
    top = Path(tempfile.mkdtemp(prefix="mrunc-userns-"))
    top.chmod(0o711)
    shutil.copytree(busybox_rootfs, top / "bundle" / "rootfs", symlinks=True, copy_function=os.link)
    yield Bundle(top / "bundle", top / "state", f"/{TEST_CGROUP_PARENT}/u{uuid.uuid4().hex[:10]}")
    shutil.rmtree(top)


@pytest.fixture
def lc(bundle, tmp_path):
    """A Lifecycle (tests/lifecycle_helpers.py) of the bundle: create, start, state... one step at a time; whatever
    the test left is deleted after it."""
    from tests.lifecycle_helpers import Lifecycle  # it imports this module

    lifecycle = Lifecycle(bundle, tmp_path)
    yield lifecycle
    lifecycle.cleanup()


def run_config(bundle: Bundle, config: dict, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    """Compile and run a config through `mrunc run`; returns the finished process."""
    bundle.write(config)
    return mrunc("--root", str(bundle.state_root), "run", "--bundle", str(bundle.path), *extra, bundle.id, **kwargs)


def _host_snapshot(session_tmp: str) -> dict:
    """What this test session could leak: mounts under its tmp dir or named mrunc, its cgroups, and
    mrunc processes started from its tmp dir (other sessions running side by side are not ours)."""
    mounts = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if session_tmp in point or "mrunc" in point:
            mounts.add(point)
    cgroups = {str(p) for pattern in (f"*/{TEST_CGROUP_PARENT}/*", f"{TEST_CGROUP_PARENT}/*")  # v1, v2
               for p in Path("/sys/fs/cgroup").glob(pattern) if p.is_dir()}
    procs = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmdline = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if b"mrunc" in cmdline and session_tmp.encode() in cmdline:
                procs.add(p.name)
    return {"mounts": mounts, "cgroups": cgroups, "procs": procs}


@pytest.fixture(autouse=True)
def host_left_untouched(tmp_path_factory):
    """Fail a test that leaves mounts, cgroups or mrunc processes behind."""
    session_tmp = str(tmp_path_factory.getbasetemp())
    before = _host_snapshot(session_tmp)
    yield
    after = _host_snapshot(session_tmp)
    leaks = {k: sorted(after[k] - before[k]) for k in after if after[k] - before[k]}
    if leaks:
        pytest.fail(f"test left these on the host: {leaks}")


@pytest.fixture(scope="session", autouse=True)
def remove_seccomp_cache():
    yield
    shutil.rmtree(SECCOMP_CACHE, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def remove_test_cgroup_parent():
    yield
    v2_parent = Path(f"/sys/fs/cgroup/{TEST_CGROUP_PARENT}")
    for parent in [*Path("/sys/fs/cgroup").glob(f"*/{TEST_CGROUP_PARENT}"), v2_parent]:
        try:
            parent.rmdir()
        except OSError:
            pass
