#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the whole test suite and the linter. Run as root: the tests create
# real containers. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check mrunc tests
exec .venv/bin/python -m pytest "$@"
