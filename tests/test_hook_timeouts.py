"""Issue 16.1: a hook's timeout bounds the whole hook, writing its stdin included. The attacker's case: a state
larger than a pipe's buffer (a 200,000-char annotation) and a hook that never reads it (`sleep`), for every kind
of hook, through `mrunc run` as an engine would call it."""

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import base_config, run_config

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
TIMEOUT = 2
# mrunc's own start-up, compile and teardown around the hook, on a loaded 2-core machine; the bug hung for good.
MARGIN = 3.0
BIG_ANNOTATION = {"x": "A" * 200_000}  # the state JSON is ~200 KB, three times a pipe's 64 KiB


def hooks_with_marker(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (the hooks this test started)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("kind", KINDS)
def test_a_hook_that_never_reads_a_large_state_fails_at_its_timeout(bundle, kind):
    marker = f"MRUNC_TEST_HOOK={uuid.uuid4().hex}"
    config = base_config(["true"])
    config["annotations"] = BIG_ANNOTATION
    # startContainer runs in the container (after pivot_root): /bin/sleep is busybox's there, the host's elsewhere
    config["hooks"] = {kind: [{"path": "/bin/sleep", "args": ["sleep", "1001"], "env": [marker],
                               "timeout": TIMEOUT}]}
    started = time.monotonic()
    result = run_config(bundle, config, timeout=TIMEOUT + 30)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + MARGIN, f"{kind}: took {elapsed:.1f}s for a {TIMEOUT}s timeout"
    assert f"{kind} hook /bin/sleep ran past specified timeout of {TIMEOUT:.1f}s" in result.stderr
    assert "Traceback" not in result.stderr
    if kind in ("poststart", "poststop"):  # by the spec only a warning: the container ran and was removed
        assert result.returncode == 0 and "warning: " in result.stderr, result.stderr
    else:
        assert result.returncode != 0, result.stderr
    assert hooks_with_marker(marker) == []  # the hook was killed, not left sleeping
    assert not (bundle.state_root / bundle.id).exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_a_hook_that_reads_the_large_state_gets_all_of_it(bundle, tmp_path):
    """Feeding stdin in pieces under the deadline must still hand a reading hook the whole state, then EOF."""
    out = tmp_path / "stdin.json"
    config = base_config(["true"])
    config["annotations"] = BIG_ANNOTATION
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"],
                                          "timeout": TIMEOUT}]}
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    state = json.loads(out.read_text())
    assert state["annotations"] == BIG_ANNOTATION and state["status"] == "created"
