"""Real containers: cgroup v1 limits (this host) written where the config says and enforced.

The runc spec mounts the container's own cgroups at /sys/fs/cgroup, so the container reads back its files.
Memory and pids enforcement are also checked in test_run_real.py.
"""

import os
from pathlib import Path

from tests.conftest import TEST_CGROUP_PARENT, base_config, run_config

CG = "/sys/fs/cgroup"


def test_cpu_and_cpuset_values_are_written(bundle):
    files = ("cpu/cpu.shares", "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "cpuset/cpuset.cpus",
             "cpuset/cpuset.mems")
    script = "cat " + " ".join(f"{CG}/{f}" for f in files) + "; grep Cpus_allowed_list /proc/self/status"
    config = base_config(["sh", "-c", script])
    config["linux"]["resources"]["cpu"] = {"shares": 512, "period": 50000, "quota": 20000, "cpus": "1", "mems": "0"}
    result = run_config(bundle, config)
    assert result.stdout.split() == ["512", "50000", "20000", "1", "0", "Cpus_allowed_list:", "1"], result.stderr


def test_memory_pids_values_are_written_and_pids_enforced(bundle):
    script = (f"cat {CG}/memory/memory.limit_in_bytes {CG}/memory/memory.memsw.limit_in_bytes "
              f"{CG}/memory/memory.soft_limit_in_bytes {CG}/memory/memory.swappiness {CG}/pids/pids.max;"
              "sleep 5 & sleep 5 & sleep 5 & echo forked-3")
    config = base_config(["sh", "-c", script])
    config["linux"]["resources"]["memory"] = {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20,
                                              "swappiness": 10}
    config["linux"]["resources"]["pids"] = {"limit": 3}
    result = run_config(bundle, config, timeout=20)
    assert result.stdout.split()[:5] == [str(64 << 20), str(96 << 20), str(32 << 20), "10", "3"], result.stderr
    assert "forked-3" not in result.stdout  # sh + 2 sleeps: the third fork is refused
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr


def test_denied_device_cannot_be_opened(bundle):
    """Deny all (the runc spec), then allow reads of fuse (10:229): both nodes exist (mknod is allowed), but
    fuse opens only for reading and loop0 not at all. Neither open needs a capability, so EPERM is the cgroup's."""
    script = ("head -c 0 /dev/cov-fuse && echo read-ok; echo x > /dev/cov-fuse; head -c 0 /dev/cov-loop;"
              "ls /dev/cov-fuse /dev/cov-loop")
    config = base_config(["sh", "-c", script])
    config["linux"]["devices"] = [{"path": "/dev/cov-fuse", "type": "c", "major": 10, "minor": 229},
                                  {"path": "/dev/cov-loop", "type": "b", "major": 7, "minor": 0}]
    config["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                                    "access": "r"})
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["read-ok", "/dev/cov-fuse", "/dev/cov-loop"], result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all("Operation not permitted" in e for e in errors), errors


def test_blkio_weight_and_throttle_are_written(bundle):
    """The weight goes to CFQ's or BFQ's file, whichever the host's I/O scheduler offers (this host: BFQ's)."""
    major, minor = _root_disk()
    weight_file = next(f for f in ("blkio.weight", "blkio.bfq.weight") if _in_child_cgroup(f"blkio/{f}"))
    config = base_config(["cat", f"{CG}/blkio/{weight_file}", f"{CG}/blkio/blkio.throttle.read_bps_device"])
    config["linux"]["resources"]["blockIO"] = {
        "weight": 300, "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    assert "300" in result.stdout.splitlines()[0]
    assert f"{major}:{minor} 1048576" in result.stdout


def test_blkio_device_weight_the_disk_cannot_take_is_a_named_error(bundle):
    """Per-device weights need BFQ on that disk; here it runs mq-deadline, so the kernel refuses, as under runc."""
    major, minor = _root_disk()
    if "[bfq]" in Path(f"/sys/dev/block/{major}:{minor}/queue/scheduler").read_text():
        return  # the disk takes device weights: nothing to refuse (the weight test covers the files)
    config = base_config(["true"])
    config["linux"]["resources"]["blockIO"] = {"weightDevice": [{"major": major, "minor": minor, "weight": 500}]}
    result = run_config(bundle, config)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "[runtime] cgroup_write_first (/linux/resources/blockIO/weightDevice/0)" in result.stderr
    assert "ENOTSUP" in result.stderr


def _root_disk() -> tuple[int, int]:
    """major, minor of the whole disk under / (per-device rules need a disk, not a partition)."""
    dev = os.stat("/").st_dev
    disk = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve()
    if (disk / "partition").exists():
        disk = disk.parent
    major, minor = (disk / "dev").read_text().split(":")
    return int(major), int(minor)


def _in_child_cgroup(file: str) -> bool:
    """Whether a new cgroup here offers the file (the root cgroup lacks the weight files)."""
    probe = Path(CG) / file.split("/")[0] / f"{TEST_CGROUP_PARENT}-probe"
    probe.mkdir()
    try:
        return (probe / file.split("/")[1]).exists()
    finally:
        probe.rmdir()
