"""Unknown config properties: the spec says a runtime must not fail on them, so each is a plan note with its JSON
pointer and a "did you mean" for a near miss; a near-missed security field is also an audit finding; `--strict`
refuses them. The user's case: `"noNewPrivilege": true` compiled with exit 0, no no_new_privs op and no note."""

import json
import subprocess
import sys

from mrunc.compiler.unknown_properties import find
from tests.conftest import REFERENCE, REPO, base_config, mrunc, run_config

NOTE = ("note: /process/noNewPrivilege: unknown property 'noNewPrivilege', ignored; did you mean 'noNewPrivileges'? "
        "a security field: as written it sets nothing")


def typo_config() -> dict:
    config = base_config(["grep", "NoNewPrivs", "/proc/self/status"])
    del config["process"]["noNewPrivileges"]
    config["process"]["noNewPrivilege"] = True
    config["x-vendor"] = {"anything": 1}
    return config


def test_a_typo_is_a_note_with_its_pointer_and_a_did_you_mean(bundle):
    bundle.write(typo_config())
    listing = mrunc("compile", "--format", "text", str(bundle.config_path), private_mounts=False)
    assert listing.returncode == 0, listing.stderr
    assert NOTE in listing.stdout.splitlines()
    assert "note: /x-vendor: unknown property 'x-vendor', ignored" in listing.stdout.splitlines()
    assert " no_new_privs " not in listing.stdout  # ignored, as the spec requires


def test_the_container_runs_as_the_spec_says_without_the_misspelt_setting(bundle):
    result = run_config(bundle, typo_config())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NoNewPrivs:", "0"]


def test_strict_refuses_unknown_properties_naming_each_and_what_is_allowed(bundle):
    bundle.write(typo_config())
    refused = mrunc("compile", "--strict", str(bundle.config_path), private_mounts=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "/process/noNewPrivilege: unknown property 'noNewPrivilege' (--strict refuses it); did you mean " \
           "'noNewPrivileges'?" in refused.stderr
    assert "allowed here: apparmorProfile, args, capabilities," in refused.stderr
    assert "/x-vendor: unknown property 'x-vendor' (--strict refuses it); allowed here: annotations," in refused.stderr
    run = mrunc("--root", str(bundle.state_root), "run", "--strict", "--bundle", str(bundle.path), bundle.id)
    assert run.returncode == 1 and "/process/noNewPrivilege" in run.stderr
    assert not (bundle.state_root / bundle.id).exists()


def test_audit_reports_a_near_missed_security_field(bundle):
    bundle.write(typo_config())
    audit = mrunc("audit", str(bundle.config_path), "--format", "json", private_mounts=False)
    assert audit.returncode == 1
    findings = [f for f in json.loads(audit.stdout)["findings"] if f["control"] == "config.unknown-security-field"]
    assert [f["pointer"] for f in findings] == ["/process/noNewPrivilege"], findings
    assert "did you mean 'noNewPrivileges'?" in findings[0]["grants"]


def test_configs_engines_write_and_the_spec_examples_have_no_unknown_properties():
    # but the spec's own example, which still has linux.resources.oomScoreAdj (its schema moved it to process)
    expected = {"spec-example.json": ["/linux/resources/oomScoreAdj"]}
    for path in [*sorted((REFERENCE / "configs").glob("*.json")),
                 *sorted((REFERENCE / "oci-runtime-spec-v1.3.0" / "test" / "config" / "good").glob("*.json"))]:
        config = json.loads(path.read_text())
        if path.name != "podman-exec-process.json":  # a process, not a config
            assert [u.pointer for u in find(config)] == expected.get(path.name, []), path.name


def test_a_compile_without_unknown_properties_does_not_import_difflib(bundle):
    bundle.write(base_config(["true"]))
    clean = subprocess.run([sys.executable, "-X", "importtime", "-m", "mrunc", "compile", str(bundle.config_path)],
                           capture_output=True, text=True, cwd=REPO, timeout=60)
    assert clean.returncode == 0 and " difflib" not in clean.stderr
    bundle.write(typo_config())
    typo = subprocess.run([sys.executable, "-X", "importtime", "-m", "mrunc", "compile", str(bundle.config_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert typo.returncode == 0 and " difflib" in typo.stderr


def test_the_spec_names_are_generated_from_the_spec_schemas():
    check = subprocess.run([sys.executable, "-m", "mrunc.tools.gen_spec_names", "--check"], capture_output=True,
                           text=True, cwd=REPO, timeout=60)
    assert check.returncode == 0, check.stdout
