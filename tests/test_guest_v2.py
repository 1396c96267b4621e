"""The container tests again, inside a user-mode Linux guest whose cgroups are pure v2 (this host's are v1).

One host test per guest test: each passes only if its twin passed in the guest, and shows the guest's
failure text and console otherwise. The guest boots once per session (tests/guest/uml.py).
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.guest import uml

# The tests that run in the guest: container tests that also run on the host (each skips inside the guest only
# what needs v1 files or a kernel feature the guest's 6.1 kernel lacks, saying why), the v2-only ones (skipped on
# the host), and the hardened config (user namespace, cgroup namespace, limits, seccomp). Left out: tests that set
# the container's whole env (see DESELECTED).
LIFECYCLE = "tests/test_lifecycle.py::test_"  # the lifecycle tests that touch the container's cgroup
GUEST_TESTS = ["tests/test_run_real.py", "tests/test_real_process.py", "tests/test_real_mounts.py",
               "tests/test_real_cgroups.py", "tests/test_real_namespaces.py", "tests/test_real_seccomp.py",
               "tests/test_faults.py::test_hardened_plan_runs_through_exec",
               "tests/test_cgroup_control.py", "tests/test_cgroup_v2.py", "tests/test_update.py",
               "tests/test_memory_policy.py",
               *(LIFECYCLE + name for name in (
                   "full_lifecycle_create_start_kill_delete", "delete_force_kills_a_running_container",
                   "delete_of_a_created_container_fails_and_leaves_it_created", "failing_op_in_create_cleans_up",
                   "kill_all_signals_every_process_in_the_cgroup", "ps_and_list_formats",
                   "pause_freezes_and_resume_thaws"))]
DESELECTED = {
    "tests/test_real_process.py::test_args_env_and_cwd":
        "sets the container's whole env, so the guest's GLIBC_TUNABLES (tests/guest/init.sh) cannot reach it",
}
GUEST_ARGS = [*GUEST_TESTS, *(f"--deselect={test}" for test in DESELECTED)]
GUEST_TIMEOUT = float(os.environ.get("MRUNC_GUEST_TIMEOUT", "420"))


def _collect() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *GUEST_ARGS], cwd=REPO, capture_output=True, text=True, timeout=60)
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    if not ids:
        raise RuntimeError(f"collecting the guest tests found none:\n{out.stdout}\n{out.stderr}")
    return ids


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "guest_test" in metafunc.fixturenames:
        metafunc.parametrize("guest_test", _collect())


@pytest.fixture(scope="session")
def guest_run(tmp_path_factory) -> uml.GuestRun:
    why_not = uml.available()
    if why_not:
        pytest.fail(f"the cgroup v2 guest cannot boot: {why_not}")
    return uml.run_pytest(REPO, sys.executable, GUEST_ARGS, tmp_path_factory.mktemp("guest"), GUEST_TIMEOUT)


def test_guest_has_a_pure_cgroup2_hierarchy(guest_run):
    assert "cgroup2 controllers: cpu io memory pids" in guest_run.console, guest_run.console_tail()
    assert guest_run.status in ("0", "1"), f"guest pytest did not finish\n{guest_run.console_tail()}"


def test_passes_in_the_v2_guest(guest_run, guest_test):
    result = guest_run.results.get(guest_test)
    if result is None:
        pytest.fail(f"{guest_test} did not run in the guest\n{guest_run.console_tail()}")
    if result["outcome"] == "skipped":
        pytest.skip(f"skipped in the guest: {result['text']}")
    assert result["outcome"] == "passed", f"in the guest:\n{result['text']}\n{guest_run.console_tail(30)}"
