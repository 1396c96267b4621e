"""bin/mrunc, the lean launcher (`python -I -S bin/mrunc`): the exec path stays small, other commands still work."""

import base64
import os
import subprocess
import sys

from mrunc.executor import b64
from tests.conftest import REPO, base_config

LAUNCHER = [sys.executable, "-I", "-S", str(REPO / "bin" / "mrunc")]
# Never on the exec path: the compile-time packages, and the stdlib modules that exec has no use for.
NOT_ON_EXEC_PATH = {"site", "jsonschema", "jinja2", "pyseccomp", "json", "argparse", "dataclasses", "typing",
                    "inspect", "importlib.metadata", "platform", "base64", "mrunc.compiler", "re", "enum", "socket",
                    "signal", "selectors", "collections", "hashlib",
                    # each maps a shared library into every mrunc process (issue 4: peak RSS)
                    "ctypes", "binascii", "zlib", "termios", "select"}


def launch(*args: str, private_mounts: bool = False) -> subprocess.CompletedProcess:
    command = [*LAUNCHER, *args]
    if private_mounts:
        command = ["unshare", "-m", "--propagation", "private", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})


def imported_modules(importtime_stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_compile_loads_site_packages_on_demand_and_exec_runs_the_plan(bundle):
    config = base_config(["sh", "-c", "echo from $(hostname); exit 3"])
    config_path = bundle.write(config)
    plan_path = bundle.path / "plan.json"
    compiled = launch("compile", str(config_path), "-o", str(plan_path))
    assert compiled.returncode == 0, compiled.stderr
    result = launch("exec", str(plan_path), private_mounts=True)
    assert (result.stdout, result.returncode) == ("from runc\n", 3), result.stderr


def test_exec_path_imports_no_compiler_and_no_heavy_stdlib(bundle):
    config_path = bundle.write(base_config(["true"]))
    plan_path = bundle.path / "plan.json"
    assert launch("compile", str(config_path), "-o", str(plan_path)).returncode == 0
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-X", "importtime", *LAUNCHER[1:],
               "exec", str(plan_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    modules = imported_modules(result.stderr)
    assert "mrunc.executor.run" in modules  # the listing is real: it shows what exec did import
    assert not modules & NOT_ON_EXEC_PATH, sorted(modules & NOT_ON_EXEC_PATH)


def test_bad_plan_through_launcher_is_one_line_error(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"format": "mrunc-plan/1", ')
    result = launch("exec", str(plan))
    assert result.returncode == 1
    assert result.stderr.startswith(f"mrunc: {plan}: ") and "not a JSON plan" in result.stderr
    assert "Traceback" not in result.stderr


def test_bpf_text_in_plans_decodes_as_the_base64_module_does():
    for data in [b"", b"\0", b"\0\0\xff", bytes(range(256)), os.urandom(2512)]:
        assert b64.decode(base64.b64encode(data).decode()) == data
    for bad in ("abc", "ab!d", "a===", "=AAA"):
        try:
            b64.decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} decoded")
