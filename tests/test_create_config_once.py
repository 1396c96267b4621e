"""create reads the bundle's config.json once: the plan it runs, the config digest it records and the state it
writes all come from the same bytes, however the file is replaced while create runs.

The replacement is made deterministic by running `mrunc create` with `open` wrapped: the moment config.json is
first opened, another file is renamed over it (the open file keeps the first config, as a reader racing a real
replacement would). Every later open, by whichever process of create's, finds the replacement."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, base_config
from tests.lifecycle_helpers import Lifecycle, wait_for

# argv: CONFIG REPLACEMENT OPENS MRUNC-ARGS...; appends a line to OPENS at each open of CONFIG.
REPLACE_AT_FIRST_OPEN = """
import builtins, os, runpy, sys

config, replacement, opens = sys.argv[1:4]
del sys.argv[1:4]
real_open = builtins.open


def open_then_replace(file, *args, **kwargs):
    opened = real_open(file, *args, **kwargs)
    if isinstance(file, str) and os.path.abspath(file) == config:
        with real_open(opens, "a") as log:
            log.write(f"{os.getpid()}\\n")
        if os.path.exists(replacement):
            os.rename(replacement, config)
    return opened


builtins.open = open_then_replace
runpy.run_module("mrunc", run_name="__main__", alter_sys=True)
"""


def create_replacing_config(lc: Lifecycle, replacement: bytes, opens) -> subprocess.CompletedProcess:
    """`mrunc create` for lc's bundle, whose config.json is replaced by `replacement` once create first opens it."""
    bundle = lc.bundle
    spare = bundle.path / "config.json.next"
    spare.write_bytes(replacement)
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-c", REPLACE_AT_FIRST_OPEN,
               str(bundle.config_path), str(spare), str(opens),
               "--root", str(bundle.state_root), "create", "--bundle", str(bundle.path), bundle.id]
    with open(lc.output, "ab") as out:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))


def config_text(bundle, args: list[str], which: str) -> bytes:
    config = base_config(args)
    config["annotations"] = {"test.which": which}
    return bundle.write(config).read_bytes()


@pytest.mark.parametrize("replacement", ["another config", "not a config"])
def test_create_runs_and_records_the_config_it_read_when_config_json_is_replaced(lc, bundle, tmp_path,
                                                                                 replacement):
    later = config_text(bundle, ["echo", "the second config"], "second") if replacement == "another config" else b"{}"
    first = config_text(bundle, ["echo", "the first config"], "first")
    opens = tmp_path / "opens"

    created = create_replacing_config(lc, later, opens)

    output = lc.output.read_text()
    assert created.returncode == 0, output
    assert "Traceback" not in output
    assert bundle.config_path.read_bytes() == later, "the test's replacement did not happen"
    assert len(opens.read_text().splitlines()) == 1, "create opened config.json more than once"
    plan = json.loads((bundle.state_root / bundle.id / "plan.json").read_text())
    assert plan["config_sha256"] == hashlib.sha256(first).hexdigest()
    assert lc.state()["annotations"] == {"test.which": "first"}
    assert lc("start", bundle.id).returncode == 0
    wait_for(lambda: lc.output.read_text() == "the first config\n")
    lc.wait_status("stopped")
    assert lc("delete", bundle.id).returncode == 0
