"""An audit as SARIF 2.1.0, the format code-scanning tools exchange (kube-linter, trivy and checkov write it; CI
services display it). Rule ids are the audit's control ids; each result points at config.json, at the line of
the field it is about when the config is at hand, with the JSON pointer as its logical location."""

import json
import os

from mrunc import __version__
from mrunc.review.audit import Finding, Report
from mrunc.review.controls import BY_ID
from mrunc.review.locate import lines_of

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# The numeric score code-scanning services sort security results by (CVSS-like, 0-10).
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0"}


def sarif(report: Report) -> str:
    lines = lines_of(report.config_text) if report.config_text else {}
    rules = [_rule(control_id) for control_id in report.controls]
    index = {control_id: i for i, control_id in enumerate(report.controls)}
    run = {
        "tool": {"driver": {"name": "mrunc", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "results": [_result(f, index[f.control], report, lines) for f in report.findings],
        "properties": {"profile": report.profile, "met": report.met, "input": report.input,
                       "config": report.config},
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=1) + "\n"


def _rule(control_id: str) -> dict:
    control = BY_ID[control_id]
    return {"id": control.id, "name": control.id, "shortDescription": {"text": control.title},
            "fullDescription": {"text": control.why}, "defaultConfiguration": {"level": LEVEL[control.severity]},
            "properties": {"severity": control.severity, "profile-level": control.level,
                           "security-severity": SECURITY_SEVERITY[control.severity]}}


def _result(f: Finding, rule_index: int, report: Report, lines: dict[str, int]) -> dict:
    pointer = f.pointer + (f"/{f.absent}" if f.absent else "")
    physical: dict = {"artifactLocation": {"uri": _uri(report.config_file or report.input)}}
    if f.pointer in lines:
        physical["region"] = {"startLine": lines[f.pointer]}
    result = {
        "ruleId": f.control, "ruleIndex": rule_index, "level": LEVEL[f.severity],
        "message": {"text": f"{f.title}: {f.grants}. {f.why}"},
        "locations": [{"physicalLocation": physical,
                       "logicalLocations": [{"fullyQualifiedName": pointer, "kind": "property"}]}],
        "properties": {"severity": f.severity, "security-severity": SECURITY_SEVERITY[f.severity],
                       "pointer": f.pointer, "absent": f.absent, "ops": f.ops},
    }
    if f.waived is not None:
        result["suppressions"] = [{"kind": "external", "justification": f.waived}]
    return result


def _uri(path: str) -> str:
    """A relative path stays relative (the scanning service resolves it against the checkout); an absolute one
    becomes a file URI."""
    from urllib.parse import quote

    return "file://" + quote(path) if os.path.isabs(path) else quote(path)
