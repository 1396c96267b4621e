"""Driving the lifecycle commands against one bundle in tests: create (whose container keeps create's stdio,
so it goes to a file, never to a pipe the test would wait on), the other commands, and polling."""

import contextlib
import json
import os
import subprocess
import sys
import time

from tests.conftest import REPO, Bundle, mrunc


class Lifecycle:
    def __init__(self, bundle: Bundle, tmp_path) -> None:
        self.bundle = bundle
        self.output = tmp_path / "container-output"

    def __call__(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """`mrunc --root STATE ARGS...`, finished."""
        return mrunc("--root", str(self.bundle.state_root), *args, **kwargs)

    def detached(self, *args: str, fd3: str = "") -> subprocess.CompletedProcess:
        """A command that leaves a container behind (create, run -d): its stdio goes to self.output."""
        command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc",
                   "--root", str(self.bundle.state_root), *args]
        with open(self.output, "ab") as out:
            if fd3:  # an engine's extra fd (create --preserve-fds): a file opened as fd 3
                command = ["sh", "-c", 'exec 3>>"$0" && exec "$@"', fd3, *command]
            return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60,
                                  env=dict(os.environ, PYTHONPATH=str(REPO)))

    def create(self, config: dict, *extra: str, container_id: str | None = None) -> subprocess.CompletedProcess:
        self.bundle.write(config)
        return self.detached("create", "--bundle", str(self.bundle.path), *extra, container_id or self.bundle.id)

    def state(self, container_id: str | None = None) -> dict:
        result = self("state", container_id or self.bundle.id)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_status(self, status: str, seconds: float = 10) -> dict:
        deadline = time.monotonic() + seconds
        while (state := self.state())["status"] != status:
            assert time.monotonic() < deadline, f"still {state['status']}, not {status}"
            time.sleep(0.02)
        return state

    def cleanup(self) -> None:
        """Force-delete whatever a test left in its state root."""
        for container_id in self("list", "-q").stdout.split():
            self("delete", "--force", container_id)


def wait_for(predicate, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextlib.contextmanager
def running(bundle: Bundle, tmp, config: dict):
    """A container of `config`, created and started; removed (with anything left in it) on the way out."""
    lc = Lifecycle(bundle, tmp)
    try:
        assert lc.create(config).returncode == 0, lc.output.read_text()
        assert lc("start", bundle.id).returncode == 0
        yield lc
    finally:
        lc.cleanup()
