"""The lowering done ahead, in a forked child, while the config is validated (compiler/ahead.py, as commands
compile): the plan and the errors are those of compiling inline, and no child outlives the compile."""

import json
import os
import signal
from pathlib import Path

import pytest

from mrunc.compiler import compile as compiler
from mrunc.compiler.compile import compile_bytes, dumps
from mrunc.compiler.errors import ConfigError, ConfigErrors
from mrunc.tools.regen_plans import GOLDENS, HOST_V1
from tests.conftest import base_config, mrunc

PODMAN = next(g for g in GOLDENS if g.name == "podman-run-netns")
ALLOW_BUT_NOSUCHCALL = {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["nosuchcall"], "action": "SCMP_ACT_ERRNO"}]}


def _children() -> list[int]:
    """Our child processes, zombies included."""
    mine = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == os.getpid():
            mine.append(int(stat.parent.name))
    return mine


@pytest.fixture
def lowered_here(monkeypatch) -> list[int]:
    """The pids that lowered in this process's memory: the child's own call is not seen here."""
    calls: list[int] = []
    lower = compiler._lower
    monkeypatch.setattr(compiler, "_lower", lambda *args: calls.append(os.getpid()) or lower(*args))
    return calls


def _compile(config: dict, ahead: bool) -> dict:
    return compile_bytes(json.dumps(config).encode(), "/b", "ahead", HOST_V1, lower_ahead=ahead)


@pytest.mark.parametrize("golden", GOLDENS, ids=[g.name for g in GOLDENS])
def test_plan_lowered_by_the_child_is_byte_identical_to_the_inline_one(golden, lowered_here):
    raw = golden.config.read_bytes()
    ahead = compile_bytes(raw, golden.bundle, golden.name, golden.host, lower_ahead=True)
    assert lowered_here == [], "the child's plan was not used"
    inline = compile_bytes(raw, golden.bundle, golden.name, golden.host)
    assert lowered_here == [os.getpid()]
    assert dumps(ahead) == dumps(inline) and ahead == inline
    assert _children() == []


def test_error_found_by_the_child_is_raised_by_lowering_again_after_validation(lowered_here):
    config = base_config(["true"])
    config["linux"]["seccomp"] = ALLOW_BUT_NOSUCHCALL
    with pytest.raises(ConfigError) as raised:
        _compile(config, ahead=True)
    assert str(raised.value) == "/linux/seccomp/syscalls/0/names/0: unknown syscall 'nosuchcall'; allowed: " \
                                "names libseccomp knows"
    assert lowered_here == [os.getpid()]
    assert _children() == []


@pytest.mark.parametrize("seccomp", [ALLOW_BUT_NOSUCHCALL, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "all"}],
                         ids=["child-finds-an-error", "child-fails-on-a-wrong-type"])
def test_invalid_config_reports_the_schema_errors_and_kills_the_child(seccomp, lowered_here):
    config = base_config(["true"])
    config["linux"]["seccomp"] = seccomp
    config["hostname"] = 7
    with pytest.raises(ConfigErrors) as ahead:
        _compile(config, ahead=True)
    with pytest.raises(ConfigErrors) as inline:
        _compile(config, ahead=False)
    assert str(ahead.value) == str(inline.value)
    assert "/hostname: got 7; allowed: string" in str(ahead.value)
    assert lowered_here == [] and _children() == []


def test_compile_command_refuses_a_bad_filter_naming_the_syscall(tmp_path):
    config = base_config(["true"])
    config["linux"]["seccomp"] = ALLOW_BUT_NOSUCHCALL
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = mrunc("compile", str(tmp_path / "config.json"))
    assert result.returncode == 1 and result.stdout == ""
    assert "/linux/seccomp/syscalls/0/names/0: unknown syscall 'nosuchcall'" in result.stderr
    assert "Traceback" not in result.stderr


def _compile_with_sigchld_ignored(config: Path, output: Path):
    ignore_sigchld = lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # noqa: E731
    return mrunc("compile", str(config), "-o", str(output), preexec_fn=ignore_sigchld,
                 private_mounts=False)  # unshare would set SIGCHLD back to its default


def test_compile_works_when_started_with_sigchld_ignored(tmp_path):
    """An engine may start mrunc with SIGCHLD ignored (it is inherited): the kernel then reaps the child itself, and
    mrunc lowers again, not refused with 'No child processes'."""
    result = _compile_with_sigchld_ignored(PODMAN.config, tmp_path / "plan.json")
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    inline = compile_bytes(PODMAN.config.read_bytes(), plan["bundle"], None, plan["host"])
    assert dumps(plan) == dumps(inline)


def test_invalid_config_is_refused_when_started_with_sigchld_ignored(tmp_path):
    config = json.loads(PODMAN.config.read_bytes())
    config["hostname"] = 7
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = _compile_with_sigchld_ignored(tmp_path / "config.json", tmp_path / "plan.json")
    assert result.returncode == 1 and "/hostname: got 7; allowed: string" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "plan.json").exists()
