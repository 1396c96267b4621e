"""Golden plans: the compiler's output for known configs is pinned in plans/, so any change to lowering or
ordering shows up as a reviewed diff. Regenerate with `python -m mrunc.tools.regen_plans`."""

import difflib
import json

import pytest

from mrunc.executor.host import fingerprint
from mrunc.executor.plan import check
from mrunc.tools.regen_plans import GOLDENS, PLANS, expected, render_golden
from tests.conftest import run_config
from tests.hardened import lacking

REGEN = "python -m mrunc.tools.regen_plans"


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_compiler_output_matches_golden_plan(golden):
    for name, text in render_golden(golden).items():
        path = PLANS / name
        assert path.exists(), f"plans/{name} is missing; run `{REGEN}`"
        diff = "".join(difflib.unified_diff(path.read_text().splitlines(True), text.splitlines(True),
                                            f"plans/{name}", "compiler output", n=1))
        assert not diff, f"plans/{name} drifted; if that is intended, run `{REGEN}` and review:\n" + diff[:4000]


def test_plans_dir_holds_only_goldens():
    listed = {path.name for path in expected() if path.parent == PLANS}
    present = {p.name for p in PLANS.iterdir() if p.is_file()}
    assert present == listed, f"stale or unlisted files in plans/: {sorted(present ^ listed)}"


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_golden_plan_passes_the_executors_checks_on_its_host_beside_its_config(golden, tmp_path):
    plan = json.loads((PLANS / f"{golden.name}.json").read_text())
    (tmp_path / "config.json").write_bytes(golden.config.read_bytes())
    check({**plan, "bundle": str(tmp_path)}, host=golden.host)


def test_golden_plan_is_refused_on_another_host():
    plan = json.loads((PLANS / "hardened-cgroup2.json").read_text())
    with pytest.raises(Exception, match="recompile it here"):
        check(plan, host=GOLDENS[0].host)


def test_hardened_golden_config_runs_as_a_real_container(bundle):
    """The hardened config is not only a listing: it runs, and each hardening is in force inside."""
    v1_devices = ("devices",) if fingerprint()["cgroup"] == "v1" else ()  # v2: a BPF program, no controller
    if missing := lacking(("memory", "pids", "cpu", *v1_devices), userns=False):
        pytest.skip(f"the hardened golden config needs {', '.join(missing)}, which this host lacks")
    config = json.loads((PLANS / "configs" / "hardened.json").read_text())
    script = ("id; grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; umask; ulimit -n;"
              "touch /x 2>/dev/null || echo root-readonly;"
              "hostname; nc 127.0.0.1 1 </dev/null 2>&1 | grep -o 'Address family not supported'")
    config["process"]["args"] = ["sh", "-c", script]
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert lines[0] == "uid=1000(user) gid=1000(user) groups=1000(user)", result.stderr
    status = dict(line.split(":\t") for line in lines[1:6])
    net_bind, kill = 1 << 10, 1 << 5
    assert (int(status["CapEff"], 16), int(status["CapBnd"], 16), int(status["CapAmb"], 16)) == \
        (net_bind, net_bind | kill, net_bind)
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
    assert lines[6:] == ["0077", "256", "root-readonly", "hardened", "Address family not supported"], result.stderr
