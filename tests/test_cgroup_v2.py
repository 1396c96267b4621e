"""cgroup v2 for real: run inside the pure-v2 guest (tests/test_guest_v2.py); skipped on a v1 host."""

import pytest

from mrunc.executor.host import cgroup_layout
from tests.conftest import base_config, run_config

pytestmark = pytest.mark.skipif(cgroup_layout() != "v2", reason="needs a pure cgroup v2 host (runs in the guest)")


def test_pids_max_refuses_fork(bundle):
    config = base_config(["sh", "-c", "cat /sys/fs/cgroup/pids.max; for i in 1 2 3 4 5 6; do sleep 1 & done; wait"])
    config["linux"]["resources"]["pids"] = {"limit": 4}
    result = run_config(bundle, config)
    assert result.stdout.splitlines()[0] == "4", result.stderr
    assert "can't fork" in result.stderr or "Resource temporarily unavailable" in result.stderr
