"""Regenerate the golden plans in plans/ and the plan schema (mrunc/schemas/plan.schema.json, made from the op table
by compiler/plan_schema.py): `python -m mrunc.tools.regen_plans` (from the repository root).

Each golden is one config compiled with a fixed host fingerprint and a fixed bundle path, so the result
depends on the compiler only, never on the machine. For each case, plans/NAME.json is the plan and
plans/NAME.txt its listing; tests/test_golden.py fails when the compiler's output drifts from them.
With `--check` nothing is written: it lists the files that differ and exits 1 if any do.
"""

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mrunc.compiler import plan_schema, render, seccomp_cache
from mrunc.compiler.compile import compile_bytes, dumps

REPO = Path(__file__).resolve().parents[2]
PLANS = REPO / "plans"
PLAN_SCHEMA = REPO / "mrunc" / "schemas" / "plan.schema.json"
REFERENCE = REPO / "reference"
OCI_GOOD = "oci-runtime-spec-v1.3.0/test/config/good"

# A hybrid host like the developers' machine (v1 controllers), and a pure cgroup2 host.
HOST_V1 = {"arch": "x86_64", "cgroup": "v1",
           "controllers": ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]}
HOST_V2 = {"arch": "x86_64", "cgroup": "v2", "controllers": ["cpu", "cpuset", "io", "memory", "pids"]}


@dataclass(frozen=True)
class Golden:
    name: str
    config: Path
    host: dict

    @property
    def bundle(self) -> str:
        return f"/var/lib/mrunc-golden/{self.name}"


GOLDENS = (
    Golden("runc-spec", REFERENCE / "configs" / "runc-spec.json", HOST_V1),
    Golden("runc-spec-rootless", REFERENCE / "configs" / "runc-spec-rootless.json", HOST_V1),
    Golden("podman-run-netns", REFERENCE / "configs" / "podman-run-netns.json", HOST_V1),
    Golden("podman-run-tty", REFERENCE / "configs" / "podman-run-tty.json", HOST_V1),
    Golden("hardened", PLANS / "configs" / "hardened.json", HOST_V1),
    Golden("hardened-cgroup2", PLANS / "configs" / "hardened.json", HOST_V2),
    Golden("oci-minimal-for-start", REFERENCE / OCI_GOOD / "minimal-for-start.json", HOST_V1),
    Golden("oci-spec-example", REFERENCE / OCI_GOOD / "spec-example.json", HOST_V1),
)


def render_golden(golden: Golden) -> dict[str, str]:
    """File name in plans/ -> its expected content."""
    plan = compile_bytes(golden.config.read_bytes(), golden.bundle, golden.name, golden.host)
    return {f"{golden.name}.json": dumps(plan), f"{golden.name}.txt": render.text(plan)}


def expected() -> dict[Path, str]:
    """Each generated file -> its expected content: the goldens, and the plan schema made from the op table."""
    files = {PLANS / name: text for golden in GOLDENS for name, text in render_golden(golden).items()}
    return files | {PLAN_SCHEMA: json.dumps(plan_schema.schema(), indent=1) + "\n"}


def main(argv: list[str]) -> int:
    # Goldens are what the compiler makes of each config, so every filter is compiled by libseccomp here, and
    # the host's seccomp cache is neither read nor written (tests/test_seccomp_cache.py checks a hit gives the same).
    os.environ[seccomp_cache.ENV] = "off"
    check = "--check" in argv
    stale = []
    for path, text in expected().items():
        name = path.relative_to(REPO)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text)
    verb = "differ" if check else "rewritten"
    print(f"{len(stale)} generated file(s) {verb}" + "".join(f"\n  {n}" for n in stale))
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
