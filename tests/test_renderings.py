"""The sh and py renderings: both parse for every golden plan, and the py one runs a real container with no
mrunc importable (it embeds the executor)."""

import json
import py_compile
import subprocess
import sys

import pytest

from mrunc.compiler import render
from mrunc.tools.regen_plans import GOLDENS, PLANS
from tests.conftest import base_config, mrunc


def golden_plan(name: str) -> dict:
    return json.loads((PLANS / f"{name}.json").read_text())


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_sh_rendering_of_every_golden_passes_sh_n(golden, tmp_path):
    script = tmp_path / "plan.sh"
    script.write_text(render.script(golden_plan(golden.name), "sh"))
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_py_rendering_of_every_golden_compiles_and_lists_the_plan(golden, tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(render.script(golden_plan(golden.name), "py"))
    py_compile.compile(str(script), doraise=True)
    listing = subprocess.run([sys.executable, "-I", str(script), "--list"], capture_output=True, text=True)
    assert listing.stdout == (PLANS / f"{golden.name}.txt").read_text()


def _python_script(bundle, config: dict):
    bundle.write(config)
    script = bundle.path.parent / "plan.py"
    compiled = mrunc("compile", str(bundle.config_path), "--format", "py", "-o", str(script), private_mounts=False)
    assert compiled.returncode == 0, compiled.stderr
    return script


def _run_isolated(*args: str) -> subprocess.CompletedProcess:
    """python -I: no PYTHONPATH, no current directory on sys.path, so mrunc itself cannot be imported."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-I", *args],
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_py_rendering_runs_a_real_container_without_mrunc_importable(bundle):
    assert _run_isolated("-c", "import mrunc").returncode != 0
    script = _python_script(bundle, base_config(["sh", "-c", "hostname; echo $$; grep NoNewPrivs /proc/self/status; "
                                                 "exit 3"]))
    result = _run_isolated(str(script))
    assert result.stdout.split() == ["runc", "1", "NoNewPrivs:", "1"], result.stderr
    assert result.returncode == 3


def test_py_rendering_refuses_a_bundle_whose_config_changed(bundle):
    config = base_config(["true"])
    script = _python_script(bundle, config)
    config["hostname"] = "changed"
    bundle.write(config)
    result = _run_isolated(str(script))
    assert result.returncode == 1
    assert "changed since the plan was compiled" in result.stderr and "Traceback" not in result.stderr
