"""The benchmark script (scripts/bench.sh -> bench/run.py) runs end to end at one iteration and cleans up.

Not a timed test: it checks the report is complete and the host is left as found, not the numbers.
"""

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIFIED = "/sys/fs/cgroup/unified"


def cgroups_named(name: str) -> set[str]:
    """Cgroups called `name`, including any left in the tmpfs directory under the host's cgroup2 mount, which
    only a namespace that unmounts it can see."""
    listed = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                             f"umount {UNIFIED} 2>/dev/null; ls -d /sys/fs/cgroup/*/{name} 2>/dev/null"],
                            capture_output=True, text=True).stdout
    return set(listed.split())


@pytest.mark.slow
def test_bench_runs_once_and_writes_a_complete_report(tmp_path):
    parent = f"mrunc-bench-test-{uuid.uuid4().hex[:8]}"
    hybrid = Path(UNIFIED).is_mount()  # this host's layout: v1 controllers beside a cgroup2 mount (others have none)
    output = tmp_path / "benchmarks.md"
    command = [sys.executable, str(REPO / "bench" / "run.py"), "--runs", "1", "--warmup", "0", "--rss-runs", "1",
               "--growth-runs", "1", "--mounts", "1,2,3", "--rules", "1,2,3", "--podman-runs", "1",
               "--output", str(output),
               "--cgroup-parent", parent, "--workdir", str(tmp_path / "work")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = output.read_text()
    expected_rows = ["`mrunc exec PLAN` |", "`mrunc run` |", "`python -I -S -c pass (floor)` |"]
    expected_rows += [f"`{tool} run` |" for tool in ("runc", "crun") if shutil.which(tool)]
    for workload in ("plain", "hardened"):
        section = report.split(f"{workload} config", 1)[1].split("##", 1)[0]
        for row in expected_rows:
            assert row in section, f"{workload}: no row {row!r}"
    unified = "unmounted in the benchmark's private mount namespace" if hybrid else f"{UNIFIED} was not mounted"
    assert unified in report
    assert "| plain | `mrunc exec PLAN` / `runc run` = " in report or not shutil.which("runc")
    assert "podman's config" in report and "## How cost grows" in report and "## Profile of `mrunc exec`" in report
    assert "| validate (the generated validator) |" in report and "| seccomp cache lookup" in report  # compile's phases
    engines = report.split("## What engines call", 1)[1].split("\n## ", 1)[0]  # issue 13's lifecycle section
    for row in ("| `create` |", "| `start` |", "| `delete --force` |", "| create + start + delete |",
                "| `state` (a created container) |", "| `list` (a created container) |",
                "| `kill 0` (a created container) |",
                "| `python -I -S -c pass` (floor", "| peak RSS of create"):
        assert row in engines, f"no row {row!r}"
    assert "`podman run --rm IMAGE true`" in engines and ("| mrunc |" in engines or "skipped" in engines)
    for call in ("state", "list", "kill 0", "delete --force"):
        assert f"| `{call}` − `python -I -S -c pass` |" in engines, call
    assert f"`/{parent}/WORKLOAD`" in report  # the containers' cgroups, which must all be gone:
    assert cgroups_named(parent) == set()
    assert Path(UNIFIED).is_mount() == hybrid  # the host kept its cgroup2 mount, if it had one
