"""The README's "Try it" commands, run as typed by root on a machine without sudo: the demo all the way (it
leaves no state dir behind), the test command far enough to see pytest start (its extra arguments go to pytest:
here a collection only, so it makes no container)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO


def try_it_commands() -> dict[str, str]:
    """The indented command lines of README's "Try it" section, by script name."""
    section = (REPO / "README.md").read_text().split("## Try it", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]
    return {Path(c.split()[0]).name: c.split("#")[0].strip() for c in commands}


def temp_state_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").iterdir() if p.name.startswith("mrunc-demo-state")}


def run_as_typed(command: str, timeout: float, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | extra_env
    return subprocess.run(command, shell=True, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def test_readme_commands_need_no_sudo():
    commands = try_it_commands()
    assert set(commands) >= {"demo.sh", "test.sh", "bench.sh"}, commands
    for command in commands.values():
        assert not re.match(r"sudo\b", command), command
        assert os.access(REPO / command.split()[0], os.X_OK), command


@pytest.mark.skipif(os.geteuid() != 0, reason="the README's commands run as root")
@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("busybox"), reason="needs unshare and busybox")
def test_readme_demo_runs_as_typed_and_leaves_no_state_dir():
    before = temp_state_dirs()
    demo = run_as_typed(try_it_commands()["demo.sh"], timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "hello from runc, pid 1, uid 0" in demo.stdout, demo.stdout[-2000:]
    assert "NoNewPrivs:\t1" in demo.stdout and "/ is read-only" in demo.stdout
    assert temp_state_dirs() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="the README's commands run as root")
def test_readme_test_command_starts_pytest():
    command = try_it_commands()["test.sh"] + " --collect-only -q tests/test_review_verify.py"
    # the conformance suite it runs first is scripts/conformance.sh's to test: skipped, as its documentation allows
    started = run_as_typed(command, timeout=600, MRUNC_SKIP_CONFORMANCE="1")
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    assert "All checks passed!" in started.stdout  # ruff ran
    assert re.search(r"\d+ tests collected", started.stdout), started.stdout[-2000:]
