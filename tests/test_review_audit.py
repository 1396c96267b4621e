"""`mrunc audit`: exit status gates CI (0 met, 1 violated, 2 bad input), profile files add and waive controls,
findings come from the plan (what will be done), and point into the config."""

import json

from mrunc.review import audit, profiles
from mrunc.review.inputs import existing_pointer
from tests.conftest import base_config, mrunc
from tests.review_cases import CONFIGS, subject


def controls(report) -> list[str]:
    return [f.control for f in report.findings]


def test_hardened_meets_baseline_and_privileged_violates_it_exit_status():
    assert mrunc("audit", str(CONFIGS["hardened"])).returncode == 0
    result = mrunc("audit", str(CONFIGS["privileged"]), "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["met"] is False
    assert report["findings"][0]["control"] in ("caps.all", "host-path.sensitive")


def test_host_paths_are_reported_worst_first():
    found = [f.grants for f in audit.audit(subject("privileged"), profiles.load("baseline")).findings
             if f.control == "host-path.sensitive"]
    assert [g.split(" at ")[0] for g in found] == ["read-write bind of host /", "read-write bind of host "
                                                   "/var/run/docker.sock", "read-only bind of host /etc"]


def test_restricted_adds_controls_to_baseline():
    baseline = controls(audit.audit(subject("runc-spec"), profiles.load("baseline")))
    restricted = controls(audit.audit(subject("runc-spec"), profiles.load("restricted")))
    assert set(baseline) < set(restricted)
    assert {"process.root-without-userns", "resources.no-memory-limit", "caps.restricted"} <= set(restricted)


def test_toml_profile_waives_a_control_and_the_audit_passes(tmp_path):
    profile = tmp_path / "team.toml"
    profile.write_text('extends = "restricted"\n[waive]\n"caps.restricted" = "KILL is needed to stop workers"\n')
    result = mrunc("audit", str(CONFIGS["hardened"]), "--profile", str(profile))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(waived: KILL is needed to stop workers)" in result.stdout


def test_json_profile_adds_a_control_and_the_audit_fails(tmp_path):
    profile = tmp_path / "team.json"
    profile.write_text(json.dumps({"add": ["resources.no-memory-limit"]}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**base_config(["true"]), "linux": {**base_config(["true"])["linux"],
                                                                       "resources": {"devices": [{"allow": False}]}}}))
    assert mrunc("audit", str(config)).returncode == 1  # baseline: no seccomp
    report = json.loads(mrunc("audit", str(config), "--profile", str(profile), "--format", "json").stdout)
    assert "resources.no-memory-limit" in [f["control"] for f in report["findings"]]


def test_bad_profile_is_refused_with_its_pointer_and_exit_2(tmp_path):
    profile = tmp_path / "team.toml"
    profile.write_text('[waive]\n"caps.nope" = "x"\n')
    result = mrunc("audit", str(CONFIGS["hardened"]), "--profile", str(profile))
    assert result.returncode == 2 and result.stdout == ""
    assert "/waive/caps.nope: unknown control 'caps.nope'; allowed: caps.all" in result.stderr
    assert "Traceback" not in result.stderr
    assert mrunc("audit", str(CONFIGS["hardened"]), "--profile", "lenient").returncode == 2


def test_bad_config_is_refused_naming_the_field_and_exit_2(tmp_path):
    config = base_config(["true"])
    config["process"]["capabilities"]["bounding"] = ["CAP_NOPE"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = mrunc("audit", str(path))
    assert result.returncode == 2
    assert "/process/capabilities/bounding/0: unknown capability 'CAP_NOPE'" in result.stderr
    assert mrunc("audit", str(tmp_path / "missing.json")).returncode == 2


def test_audit_reads_the_plan_not_the_config(bundle):
    """A plan edited to skip its seccomp load is audited as what it will do: no filter."""
    config = json.loads(CONFIGS["hardened"].read_text())
    bundle.write(config)
    plan_path = bundle.path / "plan.json"
    assert mrunc("compile", str(bundle.config_path), "-o", str(plan_path)).returncode == 0
    assert mrunc("audit", str(plan_path)).returncode == 0
    plan = json.loads(plan_path.read_text())
    plan["ops"] = [o for o in plan["ops"] if o["op"] != "seccomp_load"]
    plan_path.write_text(json.dumps(plan))
    result = mrunc("audit", str(plan_path), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [f["control"] for f in report["findings"]] == ["seccomp.none"]
    assert report["findings"][0]["pointer"] == "/linux/seccomp"  # the config is at hand: it has the field
    assert report["config"].startswith("config ")


def test_findings_name_their_ops_and_grants():
    report = audit.audit(subject("privileged"), profiles.load("baseline"))
    plan = subject("privileged").plan
    device = next(f for f in report.findings if f.control == "devices.host-node")
    assert device.pointer == "/linux/devices/0" and device.grants == "block device 8:0 at /dev/sda"
    assert [plan["ops"][i]["op"] for i in device.ops] == ["mknod"]


def test_existing_pointer_trims_to_the_nearest_present_field():
    config = {"linux": {"namespaces": [{"type": "pid"}]}}
    assert existing_pointer(config, "/linux/namespaces/0/type") == "/linux/namespaces/0/type"
    assert existing_pointer(config, "/linux/seccomp/defaultAction") == "/linux"
    assert existing_pointer(config, "/process/user") == "/"
    assert existing_pointer(None, "/process/user") == "/process/user"


def test_read_only_engine_socket_stays_critical(tmp_path):
    """A read-only bind does not stop connect(2) on a socket: the engine's API is as open as read-write."""
    config = json.loads(CONFIGS["hardened"].read_text())
    config["mounts"].append({"destination": "/var/run/docker.sock", "type": "bind", "source": "/var/run/docker.sock",
                             "options": ["bind", "ro"]})
    report = json.loads(mrunc("audit", write(tmp_path, config), "--format", "json").stdout)
    assert [(f["control"], f["severity"]) for f in report["findings"]] == [("host-path.sensitive", "critical")]


def write(tmp_path, config: dict) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)
