"""Golden audit and diff outputs for configs from harmless (hardened) to privileged, including the real runc
and podman configs. Regenerate with `MRUNC_REGEN_REVIEW=1 pytest tests/test_review_golden.py`, then review.

Op indexes are shown as op names here, so a compiler change that only shifts indexes does not drift them."""

import dataclasses
import difflib
import os

import pytest

from mrunc.review import audit, diff, profiles
from tests.review_cases import CONFIGS, GOLDEN, cgroup2, subject

AUDITS = [(name, profile, fmt) for name in CONFIGS for profile, fmt in (("baseline", "text"), ("restricted", "json"))]
AUDITS += [("privileged", "baseline", "markdown"), ("podman-run-netns", "restricted", "markdown")]
DIFFS = [("runc-spec", "hardened", "text"), ("runc-spec", "privileged", "markdown"),
         ("podman-run-netns", "podman-run-tty", "text"), ("hardened", "hardened@cgroup2", "text")]
SUFFIX = {"text": "txt", "json": "json", "markdown": "md"}


def load(name: str):
    return cgroup2(name.split("@")[0]) if name.endswith("@cgroup2") else subject(name)


def names(plan: dict, ops: list[int]) -> list[str]:
    return sorted({plan["ops"][i]["op"] for i in ops})


def matches_golden(file: str, text: str) -> None:
    path = GOLDEN / file
    if os.environ.get("MRUNC_REGEN_REVIEW"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing; regenerate with MRUNC_REGEN_REVIEW=1"
    changed = "".join(difflib.unified_diff(path.read_text().splitlines(True), text.splitlines(True), file, "now"))
    assert not changed, f"{file} drifted; if intended, regenerate with MRUNC_REGEN_REVIEW=1 and review:\n{changed}"


@pytest.mark.parametrize(("name", "profile", "fmt"), AUDITS)
def test_audit_output_matches_golden(name, profile, fmt):
    plan = subject(name).plan
    report = audit.audit(subject(name), profiles.load(profile))
    report.findings = [dataclasses.replace(f, ops=names(plan, f.ops)) for f in report.findings]
    matches_golden(f"audit-{name}-{profile}.{SUFFIX[fmt]}", audit.render(report, fmt))


@pytest.mark.parametrize(("a", "b", "fmt"), DIFFS)
def test_diff_output_matches_golden(a, b, fmt):
    plan_a, plan_b = load(a).plan, load(b).plan
    changes = [dataclasses.replace(c, ops_a=names(plan_a, c.ops_a), ops_b=names(plan_b, c.ops_b))
               for c in diff.diff(plan_a, plan_b)]
    matches_golden(f"diff-{a}-to-{b}.{SUFFIX[fmt]}", diff.render(changes, fmt, (a, b)))


def test_goldens_run_from_harmless_to_privileged():
    """The set spans the range: hardened meets baseline, the privileged config violates it at critical."""
    hardened = audit.audit(subject("hardened"), profiles.load("baseline"))
    privileged = audit.audit(subject("privileged"), profiles.load("baseline"))
    assert hardened.met and hardened.findings == []
    assert not privileged.met and privileged.findings[0].severity == "critical"


def test_goldens_dir_holds_only_goldens():
    expected = {f"audit-{n}-{p}.{SUFFIX[f]}" for n, p, f in AUDITS}
    expected |= {f"diff-{a}-to-{b}.{SUFFIX[f]}" for a, b, f in DIFFS}
    assert {p.name for p in GOLDEN.iterdir()} == expected
