"""Real containers, as root, on this machine: each feature checked from inside the container."""

import pytest

from mrunc.executor.host import cgroup_layout
from tests.conftest import base_config, run_config, swap_accounting


def test_echo_runs_and_exit_status_is_the_containers(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "echo hi; exit 7"]))
    assert result.stdout == "hi\n"
    assert result.returncode == 7, result.stderr


def test_killed_container_exits_128_plus_signal(bundle):
    # Without a pid namespace: pid 1 of a namespace would ignore its own SIGKILL.
    config = base_config(["sh", "-c", "kill -9 $$"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    result = run_config(bundle, config)
    assert result.returncode == 128 + 9, result.stderr


def test_the_container_process_starts_with_no_signal_ignored_so_a_closed_pipe_ends_its_writer(bundle):
    """Python ignores SIGPIPE and SIGXFSZ, and execve keeps what is ignored: the default_signals op undoes it, so
    `yes | head -n 1` ends (yes by SIGPIPE) as it does under runc."""
    result = run_config(bundle, base_config(["sh", "-c", "grep SigIgn /proc/self/status; yes | head -n 1"]),
                        timeout=20)
    assert result.stdout.split() == ["SigIgn:", "0000000000000000", "y"], result.stderr


def test_hostname_and_pid_1(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "hostname; echo $$"]))
    assert result.stdout.split() == ["runc", "1"], result.stderr


def test_capabilities_and_no_new_privs_take_effect(bundle):
    result = run_config(bundle, base_config(["grep", "-E", "^(CapEff|CapBnd|CapPrm|NoNewPrivs)", "/proc/self/status"]))
    fields = dict(line.split(":\t") for line in result.stdout.splitlines())
    caps = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert int(fields["CapBnd"], 16) == caps
    assert int(fields["CapEff"], 16) == caps
    assert fields["NoNewPrivs"] == "1"


def test_user_and_groups_are_set(bundle):
    config = base_config(["id"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}
    result = run_config(bundle, config)
    assert result.stdout.strip() == "uid=1000(user) gid=1000(user) groups=5,6", result.stderr


def test_readonly_root_and_masked_paths(bundle):
    script = "touch /x 2>/dev/null && echo writable || echo readonly; cat /proc/kcore | wc -c; ls /sys/firmware | wc -l"
    result = run_config(bundle, base_config(["sh", "-c", script]))
    assert result.stdout.split() == ["readonly", "0", "0"], result.stderr


def test_readonly_paths_refuse_writes(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "echo x > /proc/sys/kernel/domainname && echo wrote"]))
    assert "wrote" not in result.stdout
    assert "Read-only file system" in result.stderr


def test_rlimit_is_applied(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "ulimit -n; ulimit -Hn"]))
    assert result.stdout.split() == ["1024", "1024"], result.stderr


def test_mounts_are_in_the_container_only(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "grep -c ' /dev/shm ' /proc/self/mounts"]))
    assert result.stdout.strip() == "1", result.stderr


@pytest.mark.parametrize("limit", [4])
def test_pids_limit_is_enforced(bundle, limit):
    config = base_config(["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 2 & done; wait; echo done"])
    config["linux"]["resources"]["pids"] = {"limit": limit}
    result = run_config(bundle, config)
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr


def test_memory_limit_is_written_and_enforced(bundle):
    # dd reads 64 MiB into one buffer: more than the limit, so the OOM killer ends it.
    limit_file = "memory.max" if cgroup_layout() == "v2" else "memory/memory.limit_in_bytes"
    script = (f"cat /sys/fs/cgroup/{limit_file};"
              "dd if=/dev/zero of=/dev/null bs=64M count=1 && echo survived")
    config = base_config(["sh", "-c", script])
    # swap = limit: no swap to escape to, where the kernel accounts swap (a swap limit needs that)
    swap = {"swap": 16 * 1024 * 1024} if swap_accounting() else {}
    config["linux"]["resources"]["memory"] = {"limit": 16 * 1024 * 1024, **swap}
    result = run_config(bundle, config)
    assert result.stdout.splitlines()[0] == str(16 * 1024 * 1024)
    assert "survived" not in result.stdout
    assert "Killed" in result.stderr
