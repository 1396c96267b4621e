"""An engine may give the runtime a stderr it cannot write: containerd's runc shim gives a pod sandbox's create
/dev/null opened read-only (issue 19). A failing command must then still exit 1 with its error in the --log file,
which is where the engine reads it, as runc does; and leave nothing behind. Before, mrunc's failed print to stderr
raised: the error never reached the log and the command died with status 120."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, base_config

RUNC = shutil.which("runc")
RUNTIMES = ["mrunc", pytest.param("runc", marks=pytest.mark.skipif(not RUNC, reason="no runc binary"))]
STDERR = {"read-only": "2</dev/null", "closed": "2>&-"}  # as sh redirects it before exec'ing the runtime


def run_without_stderr(runtime: str, root, stderr: str, *args: str, env: dict | None = None) -> int:
    command = [sys.executable, "-m", "mrunc"] if runtime == "mrunc" else [RUNC]
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", f'exec "$@" {STDERR[stderr]}',
                             "sh", *command, "--root", str(root), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))
    return result.returncode


def logged_errors(log) -> list[str]:
    return [entry["msg"] for entry in map(json.loads, log.read_text().splitlines()) if entry["level"] == "error"]


@pytest.mark.parametrize("stderr", STDERR)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_create_without_a_rootfs_is_logged_when_stderr_cannot_be_written(runtime, stderr, bundle, tmp_path):
    bundle.write(base_config(["true"]))
    shutil.rmtree(bundle.path / "rootfs")
    log, root = tmp_path / "log.json", tmp_path / f"{runtime}-state"
    status = run_without_stderr(runtime, root, stderr, "--log", str(log), "--log-format", "json", "create",
                                "--bundle", str(bundle.path), bundle.id)
    assert status == 1
    assert "rootfs" in logged_errors(log)[-1]
    assert not (root / bundle.id).exists()


@pytest.mark.parametrize("stderr", STDERR)
def test_an_op_failure_in_create_is_logged_when_stderr_cannot_be_written(stderr, bundle, tmp_path):
    bundle.write(base_config(["true"]))
    log, root = tmp_path / "log.json", tmp_path / "state"
    status = run_without_stderr("mrunc", root, stderr, "--log", str(log), "--log-format", "json", "create",
                                "--bundle", str(bundle.path), bundle.id, env={"MRUNC_FAULT_AT": "5"})
    assert status == 1
    errors = logged_errors(log)
    assert errors[-1].startswith("op 5/") and "fault injected by MRUNC_FAULT_AT" in errors[-1], errors
    assert not any("cannot write its state" in e for e in errors), errors  # EBADF from stderr is not the state's
    assert not (root / bundle.id).exists()
