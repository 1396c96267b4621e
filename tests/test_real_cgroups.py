"""Real containers: cgroup v1 limits (this host) written where the config says and enforced.

The runc spec mounts the container's own cgroups at /sys/fs/cgroup, so the container reads back its files.
Memory and pids enforcement are also checked in test_run_real.py.
"""

from tests.conftest import base_config, run_config

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
