"""Real containers: every namespace kind, created or joined by path, checked from inside the container."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, base_config, run_config
from tests.lifecycle_helpers import Lifecycle
from tests.reference import reference_config

NETNS_DIR = Path("/run/netns")
HAS_TIME_NS = os.path.exists("/proc/self/ns/time")  # not in the v2 guest's UML kernel (no vDSO there)


def _host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


@pytest.fixture
def named_netns():
    """A network namespace made with `ip netns add`, deleted after the test (with /run/netns if we made it)."""
    if not shutil.which("ip"):
        pytest.skip("needs ip (iproute2) to make a named network namespace (not installed on this host)")
    had_dir = NETNS_DIR.exists()
    name = f"cov-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield NETNS_DIR / name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)
        if not had_dir:  # ip made /run/netns a mount point; undo it unless another netns now lives there
            subprocess.run(["umount", str(NETNS_DIR)], capture_output=True)
            try:
                NETNS_DIR.rmdir()
            except OSError:
                pass


def test_new_namespaces_differ_from_the_hosts(bundle):
    kinds = ("uts", "ipc", "net", "mnt", "pid", "cgroup", *(("time",) if HAS_TIME_NS else ()))
    config = base_config(["sh", "-c", "for k in " + " ".join(kinds) + "; do readlink /proc/self/ns/$k; done"])
    config["linux"]["namespaces"] += [{"type": kind} for kind in ("cgroup", "time") if kind in kinds]
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    inside = result.stdout.split()
    assert len(inside) == len(kinds)
    for kind, link in zip(kinds, inside, strict=True):
        assert link.startswith(f"{kind}:[") and link != _host_ns(kind), kind


def test_hostname_domainname_and_pid_1(bundle):
    config = base_config(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; echo $$; readlink /proc/1/exe"])
    config["hostname"] = "cov-host"
    config["domainname"] = "cov.example"
    result = run_config(bundle, config)
    assert result.stdout.split() == ["cov-host", "cov.example", "1", "/bin/busybox"], result.stderr  # pid 1: the shell


def test_network_namespace_has_only_loopback_and_it_is_up(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/operstate"]))
    # `lo` reports "unknown" when up (it has no carrier), "down" otherwise
    assert result.stdout.split() == ["lo", "unknown"], result.stderr


def test_cgroup_namespace_is_rooted_at_the_containers_cgroup(bundle):
    config = base_config(["cat", "/proc/self/cgroup"])
    config["linux"]["namespaces"].append({"type": "cgroup"})
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    memory = next(line for line in lines if ":memory:" in line or line.startswith("0::"))  # v1, v2
    assert memory.endswith(":/"), lines
    # from the host the same process sits in the test's cgroup, so the namespace really hides the path
    assert bundle.cgroup != "/"


@pytest.mark.skipif(not HAS_TIME_NS, reason="this kernel has no time namespaces (the v2 guest's UML kernel)")
def test_time_namespace_offsets_are_visible(bundle):
    day = 86400
    config = base_config(["sh", "-c", "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime"])
    config["linux"]["namespaces"].append({"type": "time"})
    config["linux"]["timeOffsets"] = {"boottime": {"secs": 1000 * day}, "monotonic": {"secs": 7 * day}}
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    offsets = [line.split() for line in lines[:2]]
    assert offsets == [["monotonic", str(7 * day), "0"], ["boottime", str(1000 * day), "0"]], result.stderr
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert int(lines[2]) >= 1000 * day + int(host_uptime) - 1, lines


def test_network_namespace_joined_by_path_is_shared(bundle, named_netns):
    config = base_config(["readlink", "/proc/self/ns/net"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    config["linux"]["namespaces"].append({"type": "network", "path": str(named_netns)})
    result = run_config(bundle, config)
    expected = f"net:[{os.stat(named_netns).st_ino}]"
    assert result.stdout.strip() == expected, result.stderr
    assert expected != _host_ns("net")


def test_user_namespace_maps_ids_and_binds_default_devices(bundle):
    """runc's rootless spec: user namespace, single-id maps, default /dev nodes bind-mounted from the host."""
    script = ("cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%n %t:%T' /dev/null /dev/zero;"
              "echo x > /dev/null && echo null-writable; grep ' /dev/null ' /proc/self/mountinfo | wc -l")
    config = reference_config("runc-spec-rootless.json", ["sh", "-c", script])
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0] == lines[1] == ["0", "0", "1"]  # the spec maps container root to the caller (root here)
    assert lines[2] == ["0"]
    assert lines[3] == ["/dev/null", "1:3"] and lines[4] == ["/dev/zero", "1:5"]
    assert lines[5] == ["null-writable"]
    assert lines[6] == ["1"]  # a bind mount, not a node made with mknod


def test_user_namespace_maps_a_shifted_range(bundle):
    """Container root stays host root (the bundle is under a 0700 dir), container ids 1.. map to 100001..:
    a file the host gave uid/gid 101000 belongs to user 1000 inside, an unmapped owner shows as nobody."""
    for name, owner in (("mapped", 101000), ("unmapped", 50)):
        path = bundle.path / "rootfs" / "etc" / name
        path.write_text("")
        os.chown(path, owner, owner)
    script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; stat -c '%u:%g' /etc/mapped /etc/unmapped"
    config = reference_config("runc-spec-rootless.json", ["sh", "-c", script])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    for key in ("uidMappings", "gidMappings"):
        config["linux"][key] = [{"containerID": 0, "hostID": 0, "size": 1},
                                {"containerID": 1, "hostID": 100001, "size": 65535}]
    result = run_config(bundle, config)
    lines = [line.split() for line in result.stdout.splitlines()]
    maps = [["0", "0", "1"], ["1", "100001", "65535"]]
    assert lines == maps + maps + [["1000"], ["1000"], ["1000:1000"], ["65534:65534"]], result.stderr


def _without(config: dict, *kinds: str) -> dict:
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] not in kinds]
    return config


def _mounts_under(mountinfo: str, path: Path) -> list[str]:
    return [line.split()[4] for line in mountinfo.splitlines() if line.split()[4].startswith(str(path))]


def test_without_a_mount_namespace_the_container_mounts_in_the_runtimes_and_they_go_at_exit(bundle):
    """config-linux.md: a namespace type not listed is inherited from the runtime. The runc spec's mounts, masked
    and read-only paths and read-only root are made in the runtime's mount namespace, under the rootfs, and the
    container is chrooted there; once it exits, nothing of it stays mounted in that namespace. (Run in a private
    namespace of our own, which we then read: the host's is not touched.)"""
    config = base_config([])
    masked = next(p for p in config["linux"]["maskedPaths"] if Path(p).is_file())  # one this kernel has
    script = ("readlink /proc/self/ns/mnt; awk '{print $5}' /proc/self/mountinfo | "
              f"grep -x -e /proc -e /dev/pts -e /sys; wc -c < {masked}; touch /x 2>&1")
    config["process"]["args"] = ["sh", "-c", script]
    bundle.write(_without(config, "mount", "pid"))
    rootfs = bundle.path / "rootfs"
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               'readlink /proc/self/ns/mnt; "$@"; echo "status $?"; grep -c " $0" /proc/self/mountinfo', str(rootfs),
               sys.executable, "-m", "mrunc", "--root", str(bundle.state_root), "run", "--bundle", str(bundle.path),
               bundle.id]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=REPO))
    lines = result.stdout.splitlines()
    assert lines[0] == lines[1] and lines[0].startswith("mnt:"), result.stdout + result.stderr  # the runtime's
    assert lines[0] != _host_ns("mnt")  # the private one the wrapper made
    assert lines[2:] == ["/proc", "/dev/pts", "/sys", "0", "touch: /x: Read-only file system", "status 1", "0"], \
        result.stdout + result.stderr


@pytest.fixture
def mount_ns_holder():
    """A process alone in a mount namespace of its own (a private copy of ours); its /proc/PID/ns/mnt to join."""
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "300"])
    try:
        path = f"/proc/{holder.pid}/ns/mnt"
        deadline = time.monotonic() + 10
        while os.readlink(path) == _host_ns("mnt"):  # until unshare has unshared
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_mount_namespace_joined_by_path_gets_the_mounts_and_loses_them_at_delete(bundle, tmp_path, mount_ns_holder):
    """The container joins the namespace (config-linux.md: the runtime MUST place the container process in it),
    its mounts are made there under the rootfs and it is chrooted there; `mrunc exec` finds the same root; delete
    detaches them, leaving the namespace's other mounts alone."""
    ns_path = f"/proc/{mount_ns_holder}/ns/mnt"
    holder_mounts = Path(f"/proc/{mount_ns_holder}/mountinfo")
    rootfs = bundle.path / "rootfs"
    config = _without(base_config(["sleep", "30"]), "mount")
    config["linux"]["namespaces"].append({"type": "mount", "path": ns_path})
    life = Lifecycle(bundle, tmp_path)
    try:
        assert life.create(config).returncode == 0, life.output.read_text()
        pid = life.state()["pid"]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(ns_path)
        assert {str(rootfs), f"{rootfs}/proc", f"{rootfs}/dev"} <= set(_mounts_under(holder_mounts.read_text(), rootfs))
        seen = life("exec", bundle.id, "sh", "-c", "readlink /proc/self/ns/mnt; ls /bin/busybox")
        assert seen.stdout.split() == [os.readlink(ns_path), "/bin/busybox"], seen.stderr
        assert life("delete", "--force", bundle.id).returncode == 0
        assert _mounts_under(holder_mounts.read_text(), rootfs) == []
        assert holder_mounts.read_text().split()[4] == "/"  # the namespace's own root is still there
    finally:
        life.cleanup()
