"""Configs from harmless to privileged, compiled for a fixed host and bundle, for the review tests."""

import json
from pathlib import Path

from mrunc.compiler.compile import compile_bytes
from mrunc.review.inputs import Subject
from mrunc.tools.regen_plans import HOST_V1, HOST_V2, OCI_GOOD, PLANS
from tests.conftest import REFERENCE

HERE = Path(__file__).resolve().parent / "review"
GOLDEN = HERE / "golden"
CONFIGS = {
    "hardened": PLANS / "configs" / "hardened.json",
    "oci-minimal-for-start": REFERENCE / OCI_GOOD / "minimal-for-start.json",
    "runc-spec": REFERENCE / "configs" / "runc-spec.json",
    "runc-spec-rootless": REFERENCE / "configs" / "runc-spec-rootless.json",
    "podman-run-tty": REFERENCE / "configs" / "podman-run-tty.json",
    "podman-run-netns": REFERENCE / "configs" / "podman-run-netns.json",
    "oci-spec-example": REFERENCE / OCI_GOOD / "spec-example.json",
    "privileged": HERE / "privileged.json",
}


def subject(name: str, host: dict = HOST_V1) -> Subject:
    raw = CONFIGS[name].read_bytes()
    plan = compile_bytes(raw, f"/var/lib/mrunc-review/{name}", name, host)
    return Subject(name, plan, json.loads(raw), f"config {name}")


def cgroup2(name: str) -> Subject:
    return subject(name, HOST_V2)
