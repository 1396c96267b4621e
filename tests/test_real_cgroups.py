"""Real containers: cgroup limits written where the config says and enforced, on this host's v1 layout and, in
the guest (tests/test_guest_v2.py), on v2.

The runc spec mounts the container's own cgroups at /sys/fs/cgroup, so the container reads back its files.
Memory and pids enforcement are also checked in test_run_real.py; more v2 files in test_cgroup_v2.py.
"""

import errno
import os
from pathlib import Path

import pytest

from mrunc.compiler.lower_cgroups import WEIGHT_DEVICE_FILES, WEIGHT_FILES
from mrunc.executor.host import cgroup_layout, fingerprint
from tests.conftest import base_config, child_cgroup_offers, run_config, swap_accounting
from tests.hardened import hardened_config, skip_unless_hardened
from tests.lifecycle_helpers import Lifecycle

CG = "/sys/fs/cgroup"
V2 = cgroup_layout() == "v2"
CONTROLLERS = fingerprint()["controllers"]


def needs_controllers(*names: str) -> pytest.MarkDecorator:
    """v2 has no devices controller to list: device rules are a BPF program attached to the cgroup."""
    missing = [name for name in names if name not in CONTROLLERS and not (V2 and name == "devices")]
    return pytest.mark.skipif(bool(missing), reason=f"needs the {', '.join(missing)} cgroup controller(s)")


needs_v1 = pytest.mark.skipif(V2 or not Path(CG, "blkio").is_dir(),
                              reason="reads v1 blkio files (v2's io files are checked in test_cgroup_v2.py); "
                              "needs the v1 blkio controller")


@needs_controllers("cpu")
def test_cpu_values_are_written(bundle):
    files = ("cpu.weight", "cpu.max") if V2 else ("cpu/cpu.shares", "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us")
    config = base_config(["cat", *(f"{CG}/{f}" for f in files)])
    config["linux"]["resources"]["cpu"] = {"shares": 512, "period": 50000, "quota": 20000}
    result = run_config(bundle, config)
    # v2: weight = 1 + (shares - 2) * 9999 / 262142 (runc's conversion), max = "quota period"
    assert result.stdout.split() == (["20", "20000", "50000"] if V2 else ["512", "50000", "20000"]), result.stderr


def _last_memory_node() -> int | None:
    """The last memory node this process may use (Mems_allowed_list): one in the cpuset the container's cgroup copies
    from its parent; None if the kernel lists none."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Mems_allowed_list:"):
            ranges = [r.split("-") for r in line.split(":", 1)[1].strip().split(",") if r]
            return max(int(r[-1]) for r in ranges) if ranges else None
    return None


@needs_controllers("cpuset")
def test_cpuset_values_are_written_and_bind_the_cpus(bundle):
    # The last CPU and memory node this test may use (CPU 1 on a 2-CPU machine: not the parent's 0-1), whatever
    # the CPUs and nodes are numbered and whichever of them this process is allowed.
    affinity = os.sched_getaffinity(0)
    if not affinity:
        pytest.skip("this process may run on no CPU (empty sched_getaffinity)")
    cpus = str(max(affinity))
    mems = _last_memory_node()
    if mems is None:
        pytest.skip("this kernel lists no memory node this process may use (no Mems_allowed_list)")
    files = ("cpuset.cpus", "cpuset.mems") if V2 else ("cpuset/cpuset.cpus", "cpuset/cpuset.mems")
    script = "cat " + " ".join(f"{CG}/{f}" for f in files) + "; grep Cpus_allowed_list /proc/self/status"
    config = base_config(["sh", "-c", script])
    config["linux"]["resources"]["cpu"] = {"cpus": cpus, "mems": str(mems)}
    result = run_config(bundle, config)
    assert result.stdout.split() == [cpus, str(mems), "Cpus_allowed_list:", cpus], result.stderr


@needs_controllers("memory", "pids")
def test_memory_pids_values_are_written_and_pids_enforced(bundle):
    # Swap limits need the kernel's swap accounting (v1: memory.memsw.*, v2: memory.swap.*); without it the rest holds
    swap = swap_accounting()
    v1_files = ("memory/memory.limit_in_bytes", *(("memory/memory.memsw.limit_in_bytes",) if swap else ()),
                "memory/memory.soft_limit_in_bytes", "memory/memory.swappiness", "pids/pids.max")
    files = ("memory.max", *(("memory.swap.max",) if swap else ()), "memory.low", "pids.max") if V2 else v1_files
    script = "cat " + " ".join(f"{CG}/{f}" for f in files) + "; sleep 5 & sleep 5 & sleep 5 & echo forked-3"
    config = base_config(["sh", "-c", script])
    config["linux"]["resources"]["memory"] = {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10,
                                              **({"swap": 96 << 20} if swap else {})}
    config["linux"]["resources"]["pids"] = {"limit": 3}
    result = run_config(bundle, config, timeout=20)
    # v2: swap.max is swap alone (OCI's swap is memory+swap); swappiness has no v2 file
    expected = [str(64 << 20), *([str(32 << 20)] if swap else []), str(32 << 20), "3"] if V2 else \
        [str(64 << 20), *([str(96 << 20)] if swap else []), str(32 << 20), "10", "3"]
    assert result.stdout.split()[:len(expected)] == expected, result.stderr
    assert "forked-3" not in result.stdout  # sh + 2 sleeps: the third fork is refused
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr


@pytest.mark.parametrize("userns", [False, True], ids=["host-root", "unprivileged-userns-root"])
def test_the_container_process_is_in_every_cgroup_of_its_config(request, userns):
    """v1: init moves itself in through the tasks files child opened on the host (cgroup_join_self), which works
    even when init is the root of a user namespace that an unprivileged host uid owns; v2: runtime writes its pid."""
    if userns:
        skip_unless_hardened()
    bundle = request.getfixturevalue("userns_bundle" if userns else "bundle")
    args = ["cat", "/proc/self/cgroup"]
    config = hardened_config(args, uid=0) if userns else base_config(args)
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "cgroup"]
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    memberships = {}  # controller -> cgroup path, as the host names it (no cgroup namespace)
    for line in result.stdout.splitlines():
        _, controllers, path = line.split(":", 2)
        memberships.update({controller: path for controller in controllers.split(",")})
    controllers = fingerprint()["controllers"]
    assert {c: memberships.get("" if V2 else c) for c in controllers} == {c: bundle.cgroup for c in controllers}


KMSG = {"path": "/dev/cov-kmsg", "type": "c", "major": 1, "minor": 11}
LOOP = {"path": "/dev/cov-loop", "type": "b", "major": 7, "minor": 0}


def kmsg_config(script: str, *rules: dict) -> dict:
    """Deny all (the runc spec), then the rules. The kmsg node exists (mknod is allowed); reading it needs
    CAP_SYSLOG (dmesg_restrict), granted here, so an EPERM is the device cgroup's."""
    config = base_config(["sh", "-c", script])
    config["linux"]["devices"] = [KMSG, LOOP]
    config["linux"]["resources"]["devices"] += list(rules)
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_SYSLOG")
    return config


@needs_controllers("devices")
def test_denied_device_cannot_be_opened(bundle):
    """Allow reads of kmsg: it opens only for reading, and loop0 (in no rule) not at all."""
    script = "head -c 0 /dev/cov-kmsg && echo read-ok; echo x > /dev/cov-kmsg; head -c 0 /dev/cov-loop; ls /dev/cov-*"
    config = kmsg_config(script, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"})
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["read-ok", "/dev/cov-kmsg", "/dev/cov-loop"], result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all("Operation not permitted" in e for e in errors), errors


@needs_controllers("devices")
@pytest.mark.parametrize("accesses, opens", [(["r", "w"], True), (["r"], False)])
def test_read_and_write_rules_for_one_device_add_up_to_a_read_write_open(bundle, accesses, opens):
    """As v1's controller merges them (on v2, mrunc merges them at compile time): r then w allow O_RDWR."""
    rules = [{"allow": True, "type": "c", "major": 1, "minor": 11, "access": a} for a in accesses]
    result = run_config(bundle, kmsg_config("true <>/dev/cov-kmsg && echo rdwr-ok", *rules))
    if opens:
        assert result.stdout.split() == ["rdwr-ok"], result.stderr
    else:
        assert result.stdout == "" and "Operation not permitted" in result.stderr, result.stdout + result.stderr


@needs_v1
def test_blkio_throttle_is_written(bundle):
    major, minor = _root_disk()
    if not child_cgroup_offers("blkio/blkio.throttle.read_bps_device"):
        pytest.skip("the blkio controller has no throttle files (kernel without CONFIG_BLK_DEV_THROTTLING)")
    config = base_config(["cat", f"{CG}/blkio/blkio.throttle.read_bps_device"])
    config["linux"]["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{major}:{minor}", "1048576"], result.stdout


@needs_v1
def test_blkio_weight_goes_to_the_schedulers_file_or_is_a_named_error(bundle):
    """The weight goes to CFQ's or BFQ's file, whichever the host's I/O scheduler offers; with neither (disks on
    mq-deadline or none, BFQ not loaded) the container fails at that op, naming the files, as runc fails."""
    weight_file = next((f for f in WEIGHT_FILES if child_cgroup_offers(f"blkio/{f}")), None)
    config = base_config(["cat", f"{CG}/blkio/{weight_file}"] if weight_file else ["true"])
    config["linux"]["resources"]["blockIO"] = {"weight": 300}
    result = run_config(bundle, config)
    if weight_file:
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == "300", result.stdout  # BFQ's file reads "default 300"
    else:
        _assert_named_error(result, "/linux/resources/blockIO/weight", "ENOENT",
                            "none of blkio.weight, blkio.bfq.weight exists")


@needs_v1
def test_blkio_device_weight_is_written_or_a_named_error(bundle):
    """Per-device weights need BFQ's blkio.bfq.weight_device (or CFQ's) and that scheduler on the disk. Three
    hosts: the file and BFQ on the disk (the weight is written); the file but another scheduler on the disk (the
    kernel refuses: ENOTSUP); no such file (ENOENT, naming the files). Each as runc."""
    major, minor = _root_disk()
    weight_file = next((f for f in WEIGHT_DEVICE_FILES if child_cgroup_offers(f"blkio/{f}")), None)
    scheduler = Path(f"/sys/dev/block/{major}:{minor}/queue/scheduler")
    takes_weights = scheduler.exists() and any(f"[{s}]" in scheduler.read_text() for s in ("bfq", "cfq"))
    config = base_config(["cat", f"{CG}/blkio/{weight_file}"] if weight_file else ["true"])
    config["linux"]["resources"]["blockIO"] = {"weightDevice": [{"major": major, "minor": minor, "weight": 500}]}
    result = run_config(bundle, config)
    where = "/linux/resources/blockIO/weightDevice/0"
    if weight_file and takes_weights:
        assert result.returncode == 0, result.stderr
        assert f"{major}:{minor} 500" in result.stdout, result.stdout
    elif weight_file:
        _assert_named_error(result, where, "ENOTSUP", "")
    else:
        _assert_named_error(result, where, "ENOENT", "none of blkio.weight_device, blkio.bfq.weight_device exists")


def _assert_named_error(result, src: str, errno_name: str, detail: str) -> None:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"[runtime] cgroup_write_first ({src})" in result.stderr, result.stderr
    assert errno_name in result.stderr and detail in result.stderr, result.stderr


def _root_disk() -> tuple[int, int]:
    """major, minor of the whole disk under / (per-device rules need a disk, not a partition); skips the test
    when / is on no block device (overlay, tmpfs, a network filesystem)."""
    dev = os.stat("/").st_dev
    disk_link = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not disk_link.exists():
        pytest.skip(f"/ is on device {os.major(dev)}:{os.minor(dev)}, which is no block device")
    disk = disk_link.resolve()
    if (disk / "partition").exists():
        disk = disk.parent
    major, minor = (disk / "dev").read_text().split(":")
    return int(major), int(minor)


# Limits whose controller a host may lack (this one has none of them): case -> (controller, the field that needs it).
ABSENT_CASES = {
    "hugepageLimits": ("hugetlb", "/linux/resources/hugepageLimits/0"),
    "network-classID": ("net_cls", "/linux/resources/network/classID"),
    "network-priorities": ("net_prio", "/linux/resources/network/priorities/0"),
}


def _hugepage_size() -> str | None:
    """One huge page size this kernel has, as OCI writes it ("2MB"); None without any."""
    sizes = sorted(int(p.name.removeprefix("hugepages-").removesuffix("kB"))
                   for p in Path("/sys/kernel/mm/hugepages").glob("hugepages-*kB"))
    if not sizes:
        return None
    kb = sizes[0]
    return f"{kb >> 20}GB" if kb >= 1 << 20 else f"{kb >> 10}MB" if kb >= 1 << 10 else f"{kb}KB"


def _with_limit(config: dict, case: str) -> dict:
    resources = config["linux"]["resources"]
    if case == "hugepageLimits":
        resources["hugepageLimits"] = [{"pageSize": _hugepage_size() or "2MB", "limit": 1 << 30}]
    elif case == "network-classID":
        resources["network"] = {"classID": 0x100001}
    else:
        resources["network"] = {"priorities": [{"name": "lo", "priority": 7}]}
    return config


@pytest.mark.parametrize("case", list(ABSENT_CASES))
def test_a_limit_whose_controller_the_host_lacks_refuses_create_naming_the_field_and_leaves_nothing(
        bundle, tmp_path, case):
    """As runc ("cannot set hugetlb limit: container could not join or create cgroup") and as the spec's MUST: the
    first op checks the controller, so no cgroup, mount, process or state dir exists yet (the autouse check)."""
    controller, pointer = ABSENT_CASES[case]
    if controller in CONTROLLERS:
        pytest.skip(f"this host has the {controller} controller: the limit is applied (the test below)")
    if V2 and case != "hugepageLimits":
        pytest.skip("cgroup v2 has no network files: the plan notes them as not applied, as runc leaves them")
    lc = Lifecycle(bundle, tmp_path)
    try:
        created = lc.create(_with_limit(base_config(["true"]), case))
        listed = lc("list", "-q").stdout
    finally:
        lc.cleanup()
    error = lc.output.read_text()
    assert created.returncode == 1 and "Traceback" not in error, error
    where = CG if V2 else f"{CG}/{controller}"
    assert "op 0/" in error and f"[runtime] cgroup_require ({pointer}): controller={controller} dir={where}: ENOENT" \
        in error, error
    assert f"no {controller} controller at {where}" in error, error
    assert f"allowed on this host: limits of {', '.join(CONTROLLERS)} (no {controller} limit)" in error, error
    assert listed == "" and not (bundle.state_root / bundle.id).exists()


@pytest.mark.parametrize("case", list(ABSENT_CASES))
def test_a_limit_whose_controller_the_host_has_is_written(bundle, case):
    controller, _ = ABSENT_CASES[case]
    if controller not in CONTROLLERS:
        pytest.skip(f"this host has no {controller} controller{'' if V2 else ' hierarchy'} (the test above)")
    if V2 and case != "hugepageLimits":
        pytest.skip("cgroup v2 has no network files")
    size = _hugepage_size()
    if case == "hugepageLimits" and size is None:
        pytest.skip("this kernel has no huge page sizes (/sys/kernel/mm/hugepages is empty)")
    file = {"hugepageLimits": f"hugetlb.{size}.{'max' if V2 else 'limit_in_bytes'}",
            "network-classID": "net_cls.classid", "network-priorities": "net_prio.ifpriomap"}[case]
    config = _with_limit(base_config(["cat", f"{CG}/{file}" if V2 else f"{CG}/{controller}/{file}"]), case)
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    expected = {"hugepageLimits": str(1 << 30), "network-classID": str(0x100001), "network-priorities": "lo 7"}[case]
    assert expected in result.stdout.splitlines(), result.stdout


def test_a_missing_controller_is_refused_even_when_the_kernel_lists_no_controllers(monkeypatch):
    """Without a readable /proc/cgroups the reason is unknown, but the refusal stands (not a FileNotFoundError)."""
    from mrunc.executor import ops_cgroup_require
    from mrunc.executor.optable import Context

    def unreadable() -> dict:
        raise FileNotFoundError(2, "No such file or directory", "/proc/cgroups")

    monkeypatch.setattr(ops_cgroup_require, "_proc_cgroups", unreadable)
    with pytest.raises(OSError) as refused:
        ops_cgroup_require.cgroup_require(Context(), "nosuchcontroller", "/sys/fs/cgroup/nosuchcontroller")
    assert refused.value.errno == errno.ENOENT
    assert "the kernel lists no controllers (/proc/cgroups cannot be read)" in refused.value.strerror
