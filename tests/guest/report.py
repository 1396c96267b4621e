"""A pytest plugin for runs inside the guest: one JSON line per test (node id, outcome, failure text) in
the file $GUEST_REPORT, which the host reads after the guest has stopped."""

import json
import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    failed_setup = report.when == "setup" and not report.passed
    if report.when == "call" or failed_setup or (report.when == "teardown" and report.failed):
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        text = report.longreprtext if not report.passed else ""
        if report.skipped and isinstance(report.longrepr, tuple):
            text = report.longrepr[2]
        with open(os.environ["GUEST_REPORT"], "a") as f:
            f.write(json.dumps({"nodeid": report.nodeid, "outcome": outcome, "text": text}) + "\n")
