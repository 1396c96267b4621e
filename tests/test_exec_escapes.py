"""The create/run escapes of test_escapes.py, tried through `mrunc exec ID` into a running container.

The unprotected variant is the same exec plan with its protecting op removed, replayed with `mrunc exec PLAN`.
The CVE-2019-5736 runtime is a private copy of the host's interpreter, so the attack can really succeed on it
(the host's own interpreter is also busy running pytest, so a write to it would fail with ETXTBSY anyway)."""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mrunc.compiler.compile_exec import compile_exec
from mrunc.state import Container
from tests.conftest import REPO, base_config
from tests.hardened import hardened_config, skip_unless_hardened
from tests.lifecycle_helpers import Lifecycle, running, wait_for
from tests.test_escapes import SECRET, _digests, _fields, _install, _interpreter_files, tools  # noqa: F401 (a fixture)

LOOP = ["sh", "-c", "while true; do sleep 0.1; done"]
ATTEMPTS = 30  # execs raced by the attacker; it sees the runtime's window in about half of them


@pytest.fixture
def box(bundle, tmp_path, tools):  # noqa: F811
    """A running container whose rootfs holds the attacker (tests/c/exe_grab.c)."""
    _install(tools, bundle, "exe_grab")
    with running(bundle, tmp_path, base_config(LOOP)) as lc:
        yield lc


def _exec_plan(box: Lifecycle, args: list[str], without: str) -> str:
    """The plan `mrunc exec ID -- ARGS` runs, minus every `without` op, as a file `mrunc exec PLAN` replays."""
    container = Container(str(box.bundle.state_root), box.bundle.id)
    process = dict(json.loads(box.bundle.config_path.read_text())["process"], args=args)
    plan = compile_exec(process, container.load(), container.plan())
    assert any(o["op"] == without for o in plan["ops"])
    plan["ops"] = [o for o in plan["ops"] if o["op"] != without]
    path = box.bundle.path / f"exec-without-{without}.json"
    path.write_text(json.dumps(plan))
    return str(path)


def _run(command: list[str], fds: dict[int, Path] | None = None, python: str = sys.executable,
         **env: str) -> subprocess.CompletedProcess:
    """mrunc COMMAND... on `python`, in a private mount namespace, with `fds` open as an engine could leak them."""
    opens = " ".join(f"{fd}<{path}" for fd, path in (fds or {}).items())
    mrunc = ["unshare", "-m", "--propagation", "private", python, "-m", "mrunc", *command]
    return subprocess.run(["sh", "-c", f'exec {opens} "$@"' if opens else 'exec "$@"', "sh", *mrunc],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **env))


# CVE-2019-5736 class: the container opens /proc/PID/exe of the process mrunc exec starts, and writes the
# runtime's binary through it once the runtime has gone.

def _interpreter_copy(tmp_path) -> tuple[str, dict[str, str]]:
    """A private copy of the interpreter binary and the environment that runs mrunc on it."""
    copy = tmp_path / "python-copy"
    shutil.copy(os.path.realpath(sys.executable), copy)
    return str(copy), {"PYTHONHOME": sys.base_prefix}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _attack(box: Lifecycle, tmp_path, name: str, exec_once, stop_on: str, times: int) -> list[str]:
    """Run the attacker in the container, then `exec_once()` until it has reported `stop_on` `times` times (or
    ATTEMPTS runs); returns what the attacker reported."""
    box.output = tmp_path / f"attacker-{name}"
    pid_file = tmp_path / f"attacker-{name}.pid"
    started = box.detached("exec", "--detach", "--pid-file", str(pid_file), box.bundle.id, "--", "/exe_grab", "60")
    assert started.returncode == 0, box.output.read_text()
    pid = int(pid_file.read_text())

    def reported() -> bool:
        return box.output.read_text().count(stop_on) >= times

    try:
        for _ in range(ATTEMPTS):
            result = exec_once()
            with contextlib.suppress(AssertionError):
                wait_for(reported, seconds=0.2)  # the attacker writes once the runtime has exited
            if reported():
                break
            assert result.returncode == 0, result.stderr
    finally:
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
    return box.output.read_text().splitlines()


def test_exec_never_lets_the_container_reopen_the_runtime_binary(box, tmp_path):
    python, env = _interpreter_copy(tmp_path)
    original = _sha256(python)
    unprotected = _exec_plan(box, ["true"], without="non_dumpable")
    report = _attack(box, tmp_path, "unprotected",
                     lambda: _run(["exec", "--force", unprotected], python=python, **env), "overwrote", 1)
    assert any(line.startswith("overwrote") for line in report), report  # the attack works on a dumpable exec
    assert _sha256(python) != original

    python, env = _interpreter_copy(tmp_path)
    host_files = [*_interpreter_files(), *Path(REPO, "mrunc").rglob("*.py"), Path(REPO, "bin", "mrunc")]
    before = _digests(host_files)
    report = _attack(box, tmp_path, "protected", lambda: _run(
        ["--root", str(box.bundle.state_root), "exec", box.bundle.id, "--", "true"], python=python, **env),
        "denied", 2)
    assert sum(line.startswith("denied") for line in report) >= 2, report  # it saw exec's processes...
    assert not [line for line in report if line.split()[0] in ("grabbed", "fd", "environ", "overwrote")], report
    assert _sha256(python) == original  # ...and reached neither their binary, nor their fds, nor environ
    assert _digests(host_files) == before


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_a_created_containers_init_is_out_of_reach_of_an_exec(request, userns, tmp_path, tools):  # noqa: F811
    """Until start, init is the host's interpreter holding the state dir's lock and fifo; an exec'd process
    beside it must not open its /proc/1/exe, fds or environ. (In a user namespace the exec opens init's
    namespace files before joining any: from inside, /proc/PID/ns of a non-dumpable init is denied.)"""
    if userns:
        skip_unless_hardened()
    bundle = request.getfixturevalue("userns_bundle" if userns else "bundle")
    _install(tools, bundle, "exe_grab")
    lc = Lifecycle(bundle, tmp_path)
    try:
        assert lc.create(hardened_config(LOOP, uid=0) if userns else base_config(LOOP)).returncode == 0, \
            lc.output.read_text()
        result = lc("exec", bundle.id, "--", "/exe_grab", "1")
    finally:
        lc.cleanup()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["denied 1", "done"]


def test_exec_of_a_script_run_by_proc_self_exe_is_refused(box):
    rootfs = box.bundle.path / "rootfs"
    (rootfs / "evil").write_text("#!/proc/self/exe\n")
    (rootfs / "evil").chmod(0o755)
    (rootfs / "link").symlink_to("/proc/self/exe")
    protected = [*_interpreter_files(), *Path(REPO, "mrunc").rglob("*.py")]
    before = _digests(protected)
    for program in ("/evil", "/link"):
        result = box("exec", box.bundle.id, "--", program)
        assert result.returncode == 1 and "Python" not in result.stderr, result.stderr
        assert "check_program (/process/args)" in result.stderr and "ELOOP" in result.stderr, result.stderr
        assert "CVE-2019-5736" in result.stderr
    assert box.state()["status"] == "running"
    assert _digests(protected) == before


# CVE-2024-21626 class: fds an engine leaks to mrunc exec, and a cwd through /proc/self/fd.

@pytest.fixture
def leaked(tmp_path) -> dict[int, Path]:
    """fd 3: a file the engine means to pass (--preserve-fds 1); fd 4: a host directory holding a secret."""
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret").write_text(SECRET)
    (tmp_path / "preserved").write_text("preserved")
    return {3: tmp_path / "preserved", 4: tmp_path / "host"}


READ_THROUGH_FDS = "echo fds $(ls /proc/self/fd); cat /proc/self/fd/3; for f in /proc/self/fd/*; do " \
                   "cat $f/secret 2>/dev/null; done; true"


def test_exec_sees_only_stdio_and_the_preserved_fds(box, leaked):
    unprotected = _run(["exec", "--force", _exec_plan(box, ["sh", "-c", READ_THROUGH_FDS], "close_fds")], leaked)
    assert SECRET in unprotected.stdout, unprotected.stderr  # the leaked directory is reachable without close_fds
    protected = _run(["--root", str(box.bundle.state_root), "exec", "--preserve-fds", "1", box.bundle.id, "--",
                      "sh", "-c", READ_THROUGH_FDS], leaked)
    assert protected.returncode == 0, protected.stderr
    assert protected.stdout.split() == ["fds", "0", "1", "2", "3", "4", "preserved"]  # 4: ls's own directory


def test_exec_cwd_through_proc_self_fd_is_refused(box, leaked):
    escape = ["sh", "-c", "cd /proc/self/fd/4 && cat secret"]
    unprotected = _run(["exec", "--force", _exec_plan(box, escape, "close_fds")], leaked)
    assert SECRET in unprotected.stdout, unprotected.stderr
    protected = _run(["--root", str(box.bundle.state_root), "exec", "--cwd", "/proc/self/fd/4", box.bundle.id,
                      "--", "sh", "-c", "cat secret; pwd"], leaked)
    assert protected.returncode == 1 and SECRET not in protected.stdout
    assert "chdir (/process/cwd): path=/proc/self/fd/4 must=True: ELOOP" in protected.stderr, protected.stderr
    assert box.state()["status"] == "running"


# no_new_privs against a setuid binary, and the bounding set against file capabilities, for an exec'd process.

def _exec_process(box: Lifecycle, tmp_path, **fields) -> dict[str, str]:
    """Exec /creds as uid 1000 with the container's process changed by `fields`; its euid and effective caps."""
    process = dict(json.loads(box.bundle.config_path.read_text())["process"], args=["/creds"],
                   user={"uid": 1000, "gid": 1000}, **fields)
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    result = box("exec", "--process", str(path), box.bundle.id)
    assert "Traceback" not in result.stderr, result.stderr
    return _fields(result.stdout) if result.returncode == 0 else {"error": result.stderr}


def test_exec_with_no_new_privileges_gains_nothing_from_a_setuid_binary(box, tools, tmp_path):  # noqa: F811
    _install(tools, box.bundle, "creds", 0o4755)
    assert _exec_process(box, tmp_path, noNewPrivileges=False)["euid"] == "0"  # the setuid bit works without it
    assert _exec_process(box, tmp_path, noNewPrivileges=True)["euid"] == "1000"


def test_exec_never_regains_a_dropped_capability_through_file_capabilities(box, tools, tmp_path):  # noqa: F811
    _install(tools, box.bundle, "creds")
    subprocess.run(["setcap", "cap_net_raw+ep", str(box.bundle.path / "rootfs" / "creds")], check=True)
    net_raw = 1 << 13
    caps = json.loads(box.bundle.config_path.read_text())["process"]["capabilities"]
    kept = _exec_process(box, tmp_path, noNewPrivileges=False,
                         capabilities=dict(caps, bounding=[*caps["bounding"], "CAP_NET_RAW"]))
    assert int(kept["capeff"], 16) & net_raw, kept  # the file capability is granted while bounding allows it
    dropped = _exec_process(box, tmp_path, noNewPrivileges=False, capabilities=caps)
    assert "EPERM" in dropped.get("error", "") or not int(dropped["capeff"], 16) & net_raw, dropped
