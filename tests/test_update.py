"""`mrunc update` on real containers: memory, pids and cpu limits read back from the container's cgroup files
(on the host and, through the container's own /sys/fs/cgroup, from inside), directly and through `podman update`;
a bad resources document changes nothing; a stopped container is refused as runc refuses it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrunc.executor.host import cgroup_layout
from tests.conftest import REPO, base_config, mrunc, needs_binaries
from tests.engines import SANDBOX_TOOLS
from tests.lifecycle_helpers import running
from tests.test_podman import IMAGE, podman, podman_engine  # noqa: F401 (fixtures)
from tests.test_real_cgroups import needs_controllers

# Every container here has memory, pids and cpu limits (limits_config), and the tests read those files back.
pytestmark = needs_controllers("memory", "pids", "cpu")

V2 = cgroup_layout() == "v2"  # the v2 guest runs this file too (tests/test_guest_v2.py)
CGROUP = Path("/sys/fs/cgroup")
MiB = 2**20
# limit -> (v1 controller, v1 file, v2 file)
FILES = {"memory": ("memory", "memory.limit_in_bytes", "memory.max"),
         "swap": ("memory", "memory.memsw.limit_in_bytes", "memory.swap.max"),
         "pids": ("pids", "pids.max", "pids.max"), "quota": ("cpu", "cpu.cfs_quota_us", "cpu.max"),
         "shares": ("cpu", "cpu.shares", "cpu.weight")}


def limits_config() -> dict:
    config = base_config(["sleep", "1000"])
    config["linux"]["resources"] = {"memory": {"limit": 200 * MiB}, "pids": {"limit": 100},
                                    "cpu": {"quota": 20000, "period": 100000}}
    return config


def read(bundle, limit: str) -> str:
    return cgroup_file(bundle, limit).read_text().strip()


def cgroup_file(bundle, limit: str) -> Path:
    controller, v1, v2 = FILES[limit]
    return CGROUP / bundle.cgroup.lstrip("/") / v2 if V2 else CGROUP / controller / bundle.cgroup.lstrip("/") / v1


def inside(lc, bundle, limit: str) -> str:
    """A cgroup file as the container sees it (its /sys/fs/cgroup shows its own cgroups)."""
    controller, v1, v2 = FILES[limit]
    result = lc("exec", bundle.id, "--", "cat", f"/sys/fs/cgroup/{v2}" if V2 else f"/sys/fs/cgroup/{controller}/{v1}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def swap_file(limit: int, swap: int) -> str:
    """OCI's swap is memory+swap (v1's memsw); v2's memory.swap.max is the swap alone."""
    return str(swap - limit if V2 else swap)


def test_update_changes_memory_pids_and_cpu_of_a_running_container(bundle, tmp_path):
    with running(bundle, tmp_path, limits_config()) as lc:
        result = lc("update", "--memory", "100m", "--pids-limit", "20", "--cpu-quota", "50000", "--cpu-period",
                    "200000", "--cpu-share", "512", bundle.id)
        assert result.returncode == 0, result.stderr
        assert read(bundle, "memory") == inside(lc, bundle, "memory") == str(100 * MiB)
        assert read(bundle, "pids") == inside(lc, bundle, "pids") == "20"
        if V2:
            assert (read(bundle, "quota"), read(bundle, "shares")) == ("50000 200000", "20")  # shares 512: weight 20
        else:
            assert (read(bundle, "quota"), read(bundle, "shares")) == ("50000", "512")
            assert (CGROUP / "cpu" / bundle.cgroup.lstrip("/") / "cpu.cfs_period_us").read_text().strip() == "200000"
        state = json.loads((bundle.state_root / bundle.id / "state.json").read_text())
        assert state["resources"]["memory"]["limit"] == 100 * MiB
        assert state["resources"]["cpu"] == {"quota": 50000, "period": 200000, "shares": 512}


@pytest.mark.usefixtures("swap_accounted")
def test_update_from_a_resources_file_and_stdin(bundle, tmp_path):
    with running(bundle, tmp_path, limits_config()) as lc:
        document = tmp_path / "resources.json"
        document.write_text(json.dumps({"memory": {"limit": 150 * MiB, "swap": 300 * MiB},
                                        "pids": {"limit": 42}}))
        assert lc("update", "-r", str(document), "--pids-limit", "7", bundle.id).returncode == 0  # file wins
        assert read(bundle, "pids") == "42"
        assert read(bundle, "swap") == swap_file(150 * MiB, 300 * MiB)
        piped = lc("update", "-r", "-", bundle.id, input=json.dumps({"pids": {"limit": 9}}))
        assert piped.returncode == 0, piped.stderr
        assert inside(lc, bundle, "pids") == "9"


@pytest.mark.usefixtures("swap_accounted")
def test_changing_one_of_two_fields_a_v2_file_holds_keeps_the_other(bundle, tmp_path):
    """memory.swap.max (swap less the limit) and cpu.max (quota and period) take what is in force for the other."""
    config = limits_config()
    config["linux"]["resources"]["memory"]["swap"] = 400 * MiB
    with running(bundle, tmp_path, config) as lc:
        assert lc("update", "--memory", "300m", "--cpu-quota", "40000", bundle.id).returncode == 0
        assert read(bundle, "swap") == swap_file(300 * MiB, 400 * MiB)
        assert read(bundle, "quota") == ("40000 100000" if V2 else "40000")


@pytest.mark.skipif(V2, reason="v1 only: v2's memory.max and memory.swap.max do not bound each other")
@pytest.mark.usefixtures("swap_accounted")
def test_raising_memory_above_the_swap_in_force_writes_swap_first(bundle, tmp_path):
    config = limits_config()
    config["linux"]["resources"]["memory"]["swap"] = 200 * MiB
    with running(bundle, tmp_path, config) as lc:
        result = lc("update", "--memory", "400m", "--memory-swap", "500m", bundle.id)
        assert result.returncode == 0, result.stderr
        plan = lc("update", "--memory", "450m", "--memory-swap", "600m", "--plan", bundle.id).stdout
        assert plan.index("memory.memsw.limit_in_bytes") < plan.index("memory.limit_in_bytes")
        assert read(bundle, "memory") == str(400 * MiB)


@pytest.mark.parametrize("args, pointer", [
    (["--memory", "lots"], "/memory/limit (--memory): got 'lots'"),
    (["--pids-limit", "x"], "/pids/limit (--pids-limit): got 'x'"),
    (["--cpu-period", "-5"], "/cpu/period (--cpu-period): got '-5'"),
    (["--memory-swap", "50m"], "/memory/swap (--memory-swap): got 52428800"),
])
def test_bad_flags_are_clear_errors_that_change_nothing(bundle, tmp_path, args, pointer):
    with running(bundle, tmp_path, limits_config()) as lc:
        before = _limits(bundle)
        result = lc("update", "--pids-limit", "50", *args, bundle.id)
        assert result.returncode == 1 and pointer in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "allowed: " in result.stderr
        assert _limits(bundle) == before


@pytest.mark.parametrize("document, pointer", [
    ('{"memory": {"limit": "1g"}, "pids": {"limit": 5}}', "/memory/limit: got \"1g\"; allowed: integer"),
    ('{"cpu": {"cpus": "0-1,x"}, "pids": {"limit": 5}}', "/cpu/cpus"),
    ('{"pids": {"limit": 5}, "cpu": {"shares": -1}}', "/cpu/shares: got -1; allowed: at least 0"),
    ('{"pids": {}}', "/pids: 'limit' is a required property"),
    ('[1, 2]', "/: got [1, 2]"),
    ('{"pids": ', "/: not valid JSON"),
])
def test_bad_resources_file_is_a_clear_error_that_changes_nothing(bundle, tmp_path, document, pointer):
    with running(bundle, tmp_path, limits_config()) as lc:
        before = _limits(bundle)
        result = lc("update", "-r", "-", bundle.id, input=document)
        assert result.returncode == 1 and pointer in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert _limits(bundle) == before
        assert json.loads((bundle.state_root / bundle.id / "state.json").read_text())["resources"] == \
            limits_config()["linux"]["resources"]


@pytest.mark.parametrize("weight", ["5000", "5", "1001", "-1", "x"])
def test_blkio_weight_out_of_runcs_range_is_refused_before_the_container_is_looked_at(tmp_path, weight):
    """runc's --blkio-weight: "range is from 10 to 1000" (0: none set). Refused as the flags are read: the
    container does not even exist here, and nothing is made under --root."""
    result = mrunc("--root", str(tmp_path / "state"), "update", "--blkio-weight", weight, "nosuch",
                   private_mounts=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"/blockIO/weight (--blkio-weight): got {weight!r}; allowed: a number from 10 to 1000, or 0 to leave " \
           "the weight as it is" in result.stderr, result.stderr
    assert not (tmp_path / "state").exists()


def test_blkio_weight_0_sets_no_weight_as_runc(bundle, tmp_path):
    with running(bundle, tmp_path, limits_config()) as lc:
        result = lc("update", "--blkio-weight", "0", "--pids-limit", "21", "--plan", bundle.id)
        assert result.returncode == 0, result.stderr
        assert "pids.max value=21" in result.stdout and "blockIO" not in result.stdout, result.stdout


def test_a_full_state_disk_refuses_the_update_before_any_cgroup_write_and_leaves_no_temp_file(bundle, tmp_path):
    """--root on a tiny tmpfs, filled once the container runs: update says which file and why, and changes
    nothing (the cgroup keeps its limit, no state.json.tmp* is left); with room again, the same update applies."""
    state, root = tmp_path / "full", tmp_path / "full" / "root"
    state.mkdir()
    bundle.write(limits_config())
    mrunc_cmd = f"{sys.executable} -m mrunc --root {root}"
    pids = cgroup_file(bundle, "pids")
    script = (f"mount -t tmpfs -o size=512k tmpfs {state} || exit 9; mkdir {root}; "
              f"{mrunc_cmd} create --bundle {bundle.path} {bundle.id} </dev/null >/dev/null 2>{tmp_path}/create.err "
              f"&& {mrunc_cmd} start {bundle.id} && (dd if=/dev/zero of={state}/fill bs=4k 2>/dev/null; true) && "
              f"{mrunc_cmd} update --pids-limit 20 {bundle.id}; echo status=$?; cat {pids}; ls -A {root}/{bundle.id}; "
              f"rm -f {state}/fill; {mrunc_cmd} update --pids-limit 20 {bundle.id}; echo status=$?; cat {pids}; "
              f"{mrunc_cmd} delete --force {bundle.id}")
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    first, second = result.stdout.split("status=")[1:]
    assert first.split()[:2] == ["1", "100"], (result.stdout, result.stderr)
    assert not [name for name in first.split()[2:] if ".tmp" in name], first
    assert "Traceback" not in result.stderr and \
        f"mrunc: cannot update container {bundle.id!r}: {root}/{bundle.id}/state.json: No space left on device; " \
        "nothing was changed" in result.stderr, result.stderr
    assert second.split() == ["0", "20"], (result.stdout, result.stderr)


def _limits(bundle) -> tuple[str, ...]:
    return read(bundle, "memory"), read(bundle, "pids"), read(bundle, "quota")


def test_update_of_a_stopped_container_is_refused_as_runc(bundle, tmp_path):
    with running(bundle, tmp_path, limits_config()) as lc:
        assert lc("kill", bundle.id, "KILL").returncode == 0
        lc.wait_status("stopped")
        result = lc("update", "--pids-limit", "5", bundle.id)
        assert result.returncode == 1 and "container not running" in result.stderr
        assert read(bundle, "pids") == "100"


def test_update_of_a_paused_container_applies_as_runc(bundle, tmp_path):
    """runc 1.1 updates a paused container (its cgroup files take writes while frozen)."""
    with running(bundle, tmp_path, limits_config()) as lc:
        assert lc("pause", bundle.id).returncode == 0
        assert lc("update", "--pids-limit", "33", bundle.id).returncode == 0
        assert read(bundle, "pids") == "33"
        assert lc("resume", bundle.id).returncode == 0


def test_update_plan_is_shown_not_run(bundle, tmp_path):
    with running(bundle, tmp_path, limits_config()) as lc:
        result = lc("update", "--pids-limit", "11", "--plan", bundle.id)
        assert result.returncode == 0
        assert "cgroup_write" in result.stdout and "pids.max value=11" in result.stdout
        assert "# /linux/resources/pids/limit" in result.stdout
        assert read(bundle, "pids") == "100"


def test_diff_and_audit_show_what_an_update_raised(bundle, tmp_path):
    with running(bundle, tmp_path, limits_config()) as lc:
        assert lc("update", "--memory", "-1", "--pids-limit", "10", bundle.id).returncode == 0
        state_dir = bundle.state_root / bundle.id
        result = lc("diff", "--format", "json", str(state_dir / "plan.json"), str(state_dir / "in-force.json"))
        changes = {c["key"]: c["label"] for c in json.loads(result.stdout)["changes"]}
        # v2: an unlimited memory.max writes memory.swap.max "max" too (runc), which it already was (no swap limit)
        expected = {"memory/limit": "raising", "pids/limit": "lowering",
                    **({"memory/swap": "not changing"} if V2 else {})}
        assert changes == expected, result.stdout
        audit = lc("audit", "--profile", "restricted", "--format", "json", str(state_dir / "in-force.json"))
        controls = {f["control"] for f in json.loads(audit.stdout)["findings"]}
        assert "resources.no-memory-limit" in controls


@pytest.mark.skipif(V2, reason="podman is set up on the v1 host only (tests/engines.py)")
@needs_binaries("podman", *SANDBOX_TOOLS)
def test_podman_update_changes_the_running_containers_limits(podman):  # noqa: F811
    """podman 4.3's update has memory, cpu and blkio flags (no --pids-limit): it sends them as a -r file."""
    started = podman.run(["-d", "--name", "upd", "--memory", "200m"], "sleep", "1000")
    assert started.returncode == 0, started.stderr
    result = podman("update", "--memory", "120m", "--memory-swap", "240m", "--cpu-quota", "30000",
                    "--cpu-period", "100000", "--cpu-shares", "512", "upd")
    assert result.returncode == 0, result.stderr
    assert any(c.startswith("update --resources=") for c in podman.sandbox.calls()), podman.sandbox.calls()

    def cat(path: str) -> str:
        out = podman("exec", "upd", "cat", path)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert cat("/sys/fs/cgroup/memory/memory.limit_in_bytes") == str(120 * MiB)
    assert cat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") == str(240 * MiB)
    assert (cat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), cat("/sys/fs/cgroup/cpu/cpu.shares")) == ("30000", "512")
    assert IMAGE


def test_update_stays_off_jsonschema_on_the_engines_path(bundle, tmp_path):
    """podman and containerd call update on a live container: like exec, it loads no jsonschema for a good
    document (the generated validator answers; jsonschema only explains a refusal)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    with running(bundle, tmp_path, limits_config()) as lc:
        probe = ("import sys; from mrunc import cli; status = cli.main(sys.argv[1:]); "
                 "print(status, 'jsonschema' in sys.modules)")
        command = ["unshare", "-m", "--propagation", "private", sys.executable, "-c", probe, "--root",
                   str(bundle.state_root), "update", "-r", "-", bundle.id]
        # The caller's environment: in the v2 guest the interpreter needs its GLIBC_TUNABLES (tests/guest/init.sh)
        result = subprocess.run(command, input='{"pids": {"limit": 12}}', capture_output=True, text=True,
                                env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
        assert result.stdout.split() == ["0", "False"], result.stderr
        assert read(bundle, "pids") == "12"
        assert lc("update", "--pids-limit", "3", "nosuch").stderr.strip() == "mrunc: container 'nosuch' does not exist"


@pytest.mark.parametrize("damage", ["cut short", "symlink"])
def test_a_damaged_in_force_plan_is_a_one_line_error_before_any_write(bundle, tmp_path, damage):
    """in-force.json is read as plan.json is (issue 18): not followed if a symlink, checked, named when bad."""
    with running(bundle, tmp_path, limits_config()) as lc:
        assert lc("update", "--pids-limit", "20", bundle.id).returncode == 0
        in_force = bundle.state_root / bundle.id / "in-force.json"
        if damage == "symlink":
            in_force.unlink()
            in_force.symlink_to(bundle.state_root / bundle.id / "plan.json")
        else:
            in_force.write_text(in_force.read_text()[:40])
        result = lc("update", "--pids-limit", "30", bundle.id)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{in_force}: " in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
        assert read(bundle, "pids") == "20"  # refused before any write
