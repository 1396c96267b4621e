"""`mrunc exec` refuses a plan that no longer describes what would run: the bundle's config.json changed since
it was compiled (or is not at hand to tell), it was compiled for another host or by another mrunc. `--force` runs
it anyway, loudly."""

import json

from mrunc import __version__
from tests.conftest import base_config, mrunc


def compiled(bundle, args: list[str]) -> str:
    config_path = bundle.write(base_config(args))
    plan_path = str(bundle.path / "plan.json")
    result = mrunc("compile", str(config_path), "-o", plan_path)
    assert result.returncode == 0, result.stderr
    return plan_path


def test_fresh_plan_runs(bundle):
    result = mrunc("exec", compiled(bundle, ["echo", "ran"]))
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


def test_plan_of_an_edited_config_is_refused_and_nothing_runs(bundle):
    plan = compiled(bundle, ["echo", "ran"])
    bundle.config_path.write_text(bundle.config_path.read_text().replace('"echo"', '"true"'))
    result = mrunc("exec", plan)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "/config_sha256" in result.stderr and "changed since the plan was compiled" in result.stderr
    assert f"mrunc compile {bundle.config_path} -o {plan}" in result.stderr
    assert "--force" in result.stderr and "Traceback" not in result.stderr


def test_force_runs_a_stale_plan_with_a_warning(bundle):
    plan = compiled(bundle, ["echo", "ran"])
    bundle.config_path.write_text(bundle.config_path.read_text() + "\n")
    result = mrunc("exec", "--force", plan)
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr
    assert "WARNING: --force: running a stale plan: /config_sha256" in result.stderr


def test_plan_for_another_host_is_refused_naming_the_fact(bundle):
    plan_path = compiled(bundle, ["echo", "ran"])
    with open(plan_path) as f:
        plan = json.load(f)
    plan["host"]["arch"] = "aarch64"
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    result = mrunc("exec", plan_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "/host: the plan was compiled for another host: arch 'aarch64' (plan) vs" in result.stderr
    assert "recompile it here: mrunc compile" in result.stderr


def test_plan_without_its_bundle_at_hand_is_refused_and_force_runs_it(bundle):
    plan = compiled(bundle, ["echo", "ran"])
    bundle.config_path.unlink()
    result = mrunc("exec", plan)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert f"/bundle: {bundle.config_path} cannot be read, so nothing shows the plan still matches it" in result.stderr
    forced = mrunc("exec", "--force", plan)
    assert (forced.returncode, forced.stdout) == (0, "ran\n"), forced.stderr
    assert "WARNING: --force: running a stale plan: /bundle:" in forced.stderr


def test_plan_of_another_mrunc_version_is_refused_naming_both(bundle):
    plan_path = compiled(bundle, ["echo", "ran"])
    with open(plan_path) as f:
        plan = json.load(f)
    plan["mrunc_version"] = "0.0.1"
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    result = mrunc("exec", plan_path)
    assert result.returncode == 1 and result.stdout == ""
    assert f"/mrunc_version: the plan was compiled by mrunc 0.0.1, this is mrunc {__version__}" in result.stderr
