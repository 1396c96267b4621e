"""scripts/conformance.sh's verdict on a validation file, from TAP the suite printed (runs copied from
this machine, trimmed): the pass rule, and the evidence a failure is reported with."""

import subprocess
import sys
from pathlib import Path

import pytest

from mrunc.tools.conformance import REPO, judge, parse_tap

PASSING_WITH_EXPECTED_ERRORS = """TAP version 13
ok 1 - create MUST generate an error if the ID is not provided
  ---
  {
    "error": "exit status 1",
    "stderr": "time=\\"2026-12-05T08:04:58Z\\" level=error msg=\\"create requires exactly 1 argument(s)\\"\\n"
  }
  ...
ok 2 - create MUST create a new container
1..2
"""

NOT_OK_WITH_STDERR = """TAP version 13
ok 1 - create MUST generate an error if the ID is not provided
not ok 2 - create MUST create a new container
  ---
  {
    "error": "exit status 1",
    "stderr": "mrunc: op 59/66 [init] chdir (/process/cwd): path=/ must=True: EPERM\\n"
  }
  ...
ok 3 - create MUST generate an error if the ID provided is not unique
1..3
"""

PLAN_ZERO_ERROR = """TAP version 13
  ---
  {
    "error": "Hooks MUST be called in the listed order\\nRefer to: https://github.com/opencontainers/runtime-spec"
  }
  ...
1..0
"""

STOPPED_BEFORE_ANY_TEST = """TAP version 13
failed to create the container
time="2026-12-05T08:06:41Z" level=error msg="runc create failed: unable to apply caps: operation not permitted"
exit status 1
"""

NOT_OK_AFTER_NOTES = """TAP version 13
failed to create the container
mrunc: op 59/66 [init] chdir (/process/cwd): path=/ must=True: EPERM
not ok 1 - exit status 1
1..1
"""


def test_expected_errors_inside_passing_tests_do_not_fail_the_file():
    assert judge(0, PASSING_WITH_EXPECTED_ERRORS) == (True, "")


def test_first_not_ok_fails_the_file_with_the_runtimes_message():
    passed, reason = judge(1, NOT_OK_WITH_STDERR)
    assert not passed
    assert reason == ("not ok 2 - create MUST create a new container: "
                      "mrunc: op 59/66 [init] chdir (/process/cwd): path=/ must=True: EPERM")


def test_not_ok_without_diagnostic_takes_the_messages_printed_before_it():
    assert judge(1, NOT_OK_AFTER_NOTES) == (
        False, "not ok 1 - exit status 1: failed to create the container / "
               "mrunc: op 59/66 [init] chdir (/process/cwd): path=/ must=True: EPERM")


def test_error_with_plan_1_0_is_a_failure_even_with_exit_0():
    assert judge(0, PLAN_ZERO_ERROR) == (False, "error: Hooks MUST be called in the listed order")


def test_a_file_that_stops_before_any_test_reports_runcs_message_without_its_log_prefix():
    assert judge(1, STOPPED_BEFORE_ANY_TEST) == (
        False, "exit 1: failed to create the container / runc create failed: unable to apply caps: "
               "operation not permitted")


def test_a_nonzero_exit_fails_even_without_not_ok():
    assert judge(2, "TAP version 13\nok 1 - fine\n1..1\n")[0] is False


def test_a_timeout_fails_and_says_so():
    assert judge(None, "TAP version 13\nok 1 - fine\n")[1].startswith("timed out")


def test_diagnostics_attach_to_the_test_before_them():
    tests, leading, notes = parse_tap(NOT_OK_WITH_STDERR)
    assert [t.line[:8] for t in tests] == ["ok 1 - c", "not ok 2", "ok 3 - c"]
    assert tests[1].diagnostic["error"] == "exit status 1"
    assert leading == {} and notes == []


def test_a_not_ok_is_explained_by_the_comment_that_follows_it_not_the_one_before():
    output = ("TAP version 13\nok 5 - memory swap is set correctly\n# expect: 50593792, actual: 50593792\n"
              "not ok 6 - memory kernel is set correctly\n# expect: 50593792, actual: 9223372036854771712\n1..6\n")
    assert judge(0, output) == (False, "not ok 6 - memory kernel is set correctly: "
                                       "expect: 50593792, actual: 9223372036854771712")


def test_expected_and_actual_of_a_diagnostic_are_the_evidence():
    output = ('TAP version 13\nnot ok 13 - has expected soft RLIMIT_NOFILE\n  ---\n  {\n    "actual": 3999,\n'
              '    "expected": 3000\n  }\n  ...\n1..13\n')
    assert judge(0, output) == (False, "not ok 13 - has expected soft RLIMIT_NOFILE: expected 3000, actual 3999")


LEAKY_RUNTIME = """#!/bin/sh
# Fails every command, and leaves behind what a broken runtime could: a process, a state dir and a cgroup.
state=$2                                # called as: RUNTIME --root STATE COMMAND ... ID
eval "id=\\${$#}"
mkdir -p "$state/$id"
[ "$3" = create ] && mkdir -p "/sys/fs/cgroup/pids/$id"
setsid sleep 300 </dev/null >/dev/null 2>&1 &
echo "leaky: refusing $3" >&2
exit 1
"""


def test_what_a_runtime_leaves_is_reported_fails_the_run_and_is_removed(tmp_path):
    suite = REPO / "build" / "conformance" / "runtime-tools"
    if not (suite / "validation" / "default" / "default.t").exists():
        pytest.skip("the conformance suite is not built (scripts/conformance-build.sh)")
    if not Path("/sys/fs/cgroup/pids/cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids hierarchy to leave a cgroup in")
    leaky = tmp_path / "leaky"
    leaky.write_text(LEAKY_RUNTIME)
    leaky.chmod(0o755)
    run = subprocess.run([sys.executable, "-m", "mrunc.tools.conformance", "--runtime", str(leaky), "default"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 1
    assert "default  FAIL" in run.stdout and "leaky: refusing create" in run.stdout
    assert "LEFT BEHIND by the runtime" in run.stdout
    left = [line.strip() for line in run.stdout.splitlines() if line.startswith("  default: ")]
    pids = [line.split()[2].rstrip(":") for line in left if line.endswith("sleep 300")]
    assert pids and not any(map(_alive, pids))  # killed after being reported
    assert any("state dir" in line for line in left)
    cgroups = [line.rsplit(" ", 1)[1] for line in left if "cgroup: /sys/fs/cgroup/pids/" in line]
    assert cgroups and not any(Path(c).exists() for c in cgroups)  # removed after being reported


def _alive(pid: str) -> bool:
    """Running, not a zombie its new parent has yet to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
