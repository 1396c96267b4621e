#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the linter, the OCI conformance suite (scripts/conformance.sh: fails
# below the floor in conformance/floor) and the whole test suite. Run as root: the tests create real
# containers. Extra arguments go to pytest; MRUNC_SKIP_CONFORMANCE=1 skips the conformance suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check mrunc tests bench
# The conformance suite first, so that pytest's summary is the last thing printed; both always run.
conformance=0
if [ "${MRUNC_SKIP_CONFORMANCE:-0}" != 1 ]; then
    scripts/conformance.sh || conformance=$?
fi
.venv/bin/python -m pytest "$@" || exit $?
exit "$conformance"
