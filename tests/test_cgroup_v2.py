"""cgroup v2 for real: run inside the pure-v2 guest (tests/test_guest_v2.py); skipped on a v1 host.

Each test reads the limits back from inside the container (its /sys/fs/cgroup) and, where it can, makes the
kernel enforce them."""

import os
from pathlib import Path

import pytest

from mrunc.executor.host import cgroup_layout
from tests.conftest import base_config, run_config

pytestmark = pytest.mark.skipif(cgroup_layout() != "v2", reason="needs a pure cgroup v2 host (runs in the guest)")
MiB = 1024 * 1024


def test_pids_max_refuses_fork(bundle):
    config = base_config(["sh", "-c", "cat /sys/fs/cgroup/pids.max; for i in 1 2 3 4 5 6; do sleep 1 & done; wait"])
    config["linux"]["resources"]["pids"] = {"limit": 4}
    result = run_config(bundle, config)
    assert result.stdout.splitlines()[0] == "4", result.stderr
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr


def test_memory_max_low_swap_and_unified_high_are_written_and_max_enforced(bundle):
    files = "memory.max memory.low memory.swap.max memory.high"
    script = f"cd /sys/fs/cgroup && cat {files}; dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived"
    config = base_config(["sh", "-c", script])
    config["linux"]["resources"]["memory"] = {"limit": 32 * MiB, "reservation": 8 * MiB, "swap": 48 * MiB}
    config["linux"]["resources"]["unified"] = {"memory.high": str(24 * MiB)}
    result = run_config(bundle, config)
    assert result.stdout.split()[:4] == [str(32 * MiB), str(8 * MiB), str(16 * MiB), str(24 * MiB)], result.stderr
    assert "survived" not in result.stdout
    assert "Killed" in result.stderr


def test_cpu_weight_from_shares_and_max_from_quota_and_period(bundle):
    config = base_config(["sh", "-c", "cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpu.max"])
    config["linux"]["resources"]["cpu"] = {"shares": 2048, "quota": 25000, "period": 50000}
    result = run_config(bundle, config)
    # runc's conversion: weight = 1 + (shares - 2) * 9999 / 262142
    assert result.stdout.splitlines() == ["79", "25000 50000"], result.stderr


def test_cpu_max_throttles(bundle):
    script = "timeout 1 sh -c 'while :; do :; done'; grep -E '^(nr_throttled|throttled_usec)' /sys/fs/cgroup/cpu.stat"
    config = base_config(["sh", "-c", script])
    config["linux"]["resources"]["cpu"] = {"quota": 10000, "period": 100000}
    result = run_config(bundle, config)
    stats = dict(line.split() for line in result.stdout.splitlines())
    assert int(stats["nr_throttled"]) > 0 and int(stats["throttled_usec"]) > 0, result.stdout + result.stderr


def test_io_weight_goes_to_bfq_or_io_weight_where_the_kernel_offers_one(bundle):
    config = base_config(["sh", "-c", "cat /sys/fs/cgroup/io.bfq.weight 2>/dev/null || cat /sys/fs/cgroup/io.weight"])
    config["linux"]["resources"]["blockIO"] = {"weight": 500}
    result = run_config(bundle, config)
    if "none of io.bfq.weight, io.weight exists" in result.stderr:
        pytest.skip("this kernel has neither io.weight (CONFIG_BLK_CGROUP_IOCOST) nor io.bfq.weight "
                    "(CONFIG_BFQ_GROUP_IOSCHED): the guest's UML 6.1 builds neither; mrunc named the failing write")
    # BFQ takes blkio's weight as it is; io.weight the converted 1 + (500 - 10) * 9999 / 990
    assert result.stdout.split()[:2] in (["default", "500"], ["default", "4950"]), result.stderr


GUEST_DISK = Path("/dev/ubda")  # the guest's read-only disk (tests/guest/uml.py), major 98


@pytest.mark.skipif(not GUEST_DISK.exists(), reason="needs the guest's disk /dev/ubda (tests/guest/uml.py)")
def test_io_max_throttles_reads_of_a_disk(bundle):
    """io.max rbps=512 KiB/s on the disk: reading 2 MiB of it (first read: not cached) takes about 4 s."""
    dev = os.stat(GUEST_DISK).st_rdev
    major, minor = os.major(dev), os.minor(dev)
    script = ("cat /sys/fs/cgroup/io.max; a=$(cut -d' ' -f1 /proc/uptime);"
              "dd if=/dev/disk of=/dev/null bs=64k count=32 2>/dev/null;"
              "b=$(cut -d' ' -f1 /proc/uptime); echo $a $b")
    config = base_config(["sh", "-c", script])
    config["linux"]["devices"] = [{"path": "/dev/disk", "type": "b", "major": major, "minor": minor}]
    config["linux"]["resources"]["devices"].append({"allow": True, "type": "b", "major": major, "minor": minor,
                                                    "access": "r"})
    config["linux"]["resources"]["blockIO"] = {"throttleReadBpsDevice": [{"major": major, "minor": minor,
                                                                          "rate": 512 * 1024}]}
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines[0] == f"{major}:{minor} rbps=524288 wbps=max riops=max wiops=max", result.stderr
    start, end = map(float, lines[1].split())
    assert end - start > 2.5, f"2 MiB at 512 KiB/s took {end - start:.2f}s"


KMSG = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}
OPEN_KMSG = "true </dev/kmsg && echo read-ok; true >/dev/kmsg && echo write-ok; true >/dev/null && echo null-ok"


def test_device_rules_allow_listed_devices_and_deny_the_rest_with_eperm(bundle):
    config = base_config(["sh", "-c", OPEN_KMSG])
    config["linux"]["devices"] = [KMSG]  # the node exists; the default rules deny opening it
    result = run_config(bundle, config)
    assert result.stdout.split() == ["null-ok"], result.stderr
    assert result.stderr.count("Operation not permitted") == 2, result.stderr


def test_a_later_device_rule_overrides_an_earlier_one(bundle):
    config = base_config(["sh", "-c", OPEN_KMSG])
    config["linux"]["devices"] = [KMSG]
    config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"},
        {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"}]
    result = run_config(bundle, config)
    assert result.stdout.split() == ["read-ok", "null-ok"], result.stderr
    assert result.stderr.count("Operation not permitted") == 1, result.stderr


def test_cgroup_namespace_sees_a_cgroup2_mount_rooted_at_its_cgroup(bundle):
    script = "cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mounts; cat /sys/fs/cgroup/pids.max"
    config = base_config(["sh", "-c", script])
    config["linux"]["namespaces"].append({"type": "cgroup"})
    config["linux"]["resources"]["pids"] = {"limit": 9}
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines[0] == "0::/", result.stderr
    assert lines[1].split()[2] == "cgroup2" and "ro" in lines[1].split()[3].split(",")
    assert lines[2] == "9"
