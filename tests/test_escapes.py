"""Escapes from runc/crun advisories, tried against real containers. Each attack is first shown to work on an
unprotected setup (a plan with the protecting op removed, or the kernel primitive done by hand in a private
mount namespace), so the protected run cannot pass by accident."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO, base_config, mrunc

SECRET = "host-secret-7f3a"


def _compile(bundle, config: dict, without: str | None = None) -> str:
    """Compile config for bundle; `without` removes every op of that name (the unprotected variant)."""
    bundle.write(config)
    result = mrunc("compile", str(bundle.config_path), private_mounts=False)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    if without:
        plan["ops"] = [o for o in plan["ops"] if o["op"] != without]
    path = bundle.path / f"plan-without-{without}.json"
    path.write_text(json.dumps(plan))
    return str(path)


def _exec_with_fd(plan: str, fd: int) -> subprocess.CompletedProcess:
    """`mrunc exec` as an engine that leaks `fd` to it would run it."""
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc", "exec", plan]
    return subprocess.run(command, pass_fds=(fd,), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def _host_dir_fd(tmp_path) -> int:
    secret_dir = tmp_path / "host"
    secret_dir.mkdir()
    (secret_dir / "secret").write_text(SECRET)
    return os.open(secret_dir, os.O_RDONLY | os.O_DIRECTORY)


# CVE-2024-21626 class: a host fd reaching the container, and a cwd through /proc/self/fd.

READ_THROUGH_FDS = "echo fds $(ls /proc/self/fd); for f in /proc/self/fd/*; do cat $f/secret 2>/dev/null; done; true"


def test_a_leaked_host_fd_never_reaches_the_container(bundle, tmp_path):
    fd = _host_dir_fd(tmp_path)
    try:
        config = base_config(["sh", "-c", READ_THROUGH_FDS])
        unprotected = _exec_with_fd(_compile(bundle, config, without="close_fds"), fd)
        protected = _exec_with_fd(_compile(bundle, config), fd)
    finally:
        os.close(fd)
    assert SECRET in unprotected.stdout, unprotected.stderr  # the attack works when the fd is left open
    assert protected.returncode == 0, protected.stderr
    assert protected.stdout.split() == ["fds", "0", "1", "2", "3"]  # 3: ls's own directory
    assert SECRET not in protected.stdout


def test_a_cwd_through_proc_self_fd_cannot_reach_the_host(bundle, tmp_path):
    fd = _host_dir_fd(tmp_path)
    try:
        leaked = base_config(["sh", "-c", f"cd /proc/self/fd/{fd} && cat secret"])
        unprotected = _exec_with_fd(_compile(bundle, leaked, without="close_fds"), fd)
        config = base_config(["sh", "-c", "cat secret; pwd"])
        config["process"]["cwd"] = f"/proc/self/fd/{fd}"
        protected = _exec_with_fd(_compile(bundle, config), fd)
    finally:
        os.close(fd)
    assert SECRET in unprotected.stdout, unprotected.stderr
    assert protected.returncode == 1 and SECRET not in protected.stdout
    assert f"chdir (/process/cwd): path=/proc/self/fd/{fd} must=True: ELOOP" in protected.stderr
