"""`mrunc features` is a valid features document whose claims the compiler honours; `mrunc spec` writes runc's
default config, which runs."""

import json
from pathlib import Path

import jsonschema
import pytest
import referencing

from mrunc.compiler.compile import compile_bytes
from tests.conftest import REFERENCE, base_config, mrunc, run_config

SPEC_DIR = REFERENCE / "oci-runtime-spec-v1.3.0"


def features() -> dict:
    result = mrunc("features", private_mounts=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def validator(schema_name: str) -> jsonschema.Draft4Validator:
    """The official schema, its cross-file refs (defs.json#/...) served from a registry of the spec's files."""
    resources = [(path.name, referencing.Resource.from_contents(json.loads(path.read_text()),
                                                                referencing.jsonschema.DRAFT4))
                 for path in SPEC_DIR.glob("*.json")]
    registry = referencing.Registry().with_resources(resources)
    return jsonschema.Draft4Validator(json.loads((SPEC_DIR / schema_name).read_text()), registry=registry)


def test_features_is_valid_against_the_official_schema():
    check = validator("features-schema.json")
    check.validate(features())
    with pytest.raises(jsonschema.ValidationError):  # the validator does reject: the spec's own bad example
        check.validate(json.loads((SPEC_DIR / "test/features/bad/missing-ociVersionMax.json").read_text()))


def _compiles(config: dict) -> dict:
    return compile_bytes(json.dumps(config).encode(), "/tmp/bundle", "features-check")


def test_every_advertised_seccomp_feature_compiles():
    seccomp = features()["linux"]["seccomp"]
    for action in seccomp["actions"]:
        for operator in seccomp["operators"]:
            config = base_config(["true"])
            config["linux"]["seccomp"] = {
                "defaultAction": "SCMP_ACT_ALLOW", "architectures": seccomp["archs"], "flags": seccomp["knownFlags"],
                "syscalls": [{"names": ["mkdir"], "action": action,
                              "args": [{"index": 1, "value": 1, "op": operator}]}]}
            ops = [o["op"] for o in _compiles(config)["ops"]]
            assert "seccomp_load" in ops, (action, operator)


def test_every_advertised_mount_option_and_namespace_compiles():
    linux = features()
    config = base_config(["true"])
    config["mounts"] += [{"destination": f"/m{i}", "type": "tmpfs", "source": "tmpfs", "options": [option]}
                         for i, option in enumerate(linux["mountOptions"])]
    config["linux"]["namespaces"] = [{"type": t} for t in linux["linux"]["namespaces"]]
    config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    plan = _compiles(config)
    targets = {o["args"].get("target") for o in plan["ops"] if o["op"] == "mount"}
    assert {f"/m{i}" for i in range(len(linux["mountOptions"]))} <= targets


def test_every_advertised_capability_compiles_and_is_known_to_this_kernel():
    caps = features()["linux"]["capabilities"]
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    assert len(caps) == last_cap + 1
    config = base_config(["true"])
    config["process"]["capabilities"] = {kind: caps for kind in ("bounding", "effective", "permitted")}
    capset = next(o for o in _compiles(config)["ops"] if o["op"] == "capset")
    assert sorted(capset["args"]["effective"]) == sorted(caps)


@pytest.mark.parametrize("flags, reference", [([], "runc-spec.json"), (["--rootless"], "runc-spec-rootless.json")])
def test_spec_writes_the_same_config_as_runc(tmp_path, flags, reference):
    result = mrunc("spec", *flags, "--bundle", str(tmp_path), private_mounts=False)
    assert result.returncode == 0, result.stderr
    ours = json.loads((tmp_path / "config.json").read_text())
    runc = json.loads((REFERENCE / "configs" / reference).read_text())
    assert ours.pop("ociVersion") == "1.3.0"
    runc.pop("ociVersion")
    assert ours == runc


def test_spec_refuses_to_overwrite_a_config(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = mrunc("spec", "--bundle", str(tmp_path), private_mounts=False)
    assert result.returncode == 1
    assert "config.json: exists already" in result.stderr
    assert (tmp_path / "config.json").read_text() == "{}"


def test_spec_config_runs_an_interactive_shell_on_a_pty(bundle):
    assert mrunc("spec", "--bundle", str(bundle.path), private_mounts=False).returncode == 0
    config = json.loads(bundle.config_path.read_text())
    result = run_config(bundle, config, input="echo spec-$((6*7)) $(tty)\nexit 4\n")
    assert "spec-42 /dev/pts/0" in result.stdout.replace("\r", ""), result
    assert result.returncode == 4
