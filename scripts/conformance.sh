#!/usr/bin/env bash
# Run the OCI runtime-tools validation suite (conformance/, vendored) against mrunc, as root: each of its 58
# files in its own private mount namespace and TMPDIR, under a time bound; prints a per-file table, the totals
# and anything left behind; exits 1 when fewer files pass than conformance/floor or something was left behind.
# Builds the suite first if needed (scripts/conformance-build.sh; scripts/setup.sh makes .venv).
# Usage: scripts/conformance.sh [--runtime PATH] [--timeout S] [--results FILE] [--keep] [FILE...]
#   --runtime /usr/bin/runc runs the same files against another runtime (no floor then).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/mrunc ] || { echo "conformance: no .venv/bin/mrunc: run scripts/setup.sh first" >&2; exit 2; }
scripts/conformance-build.sh
exec .venv/bin/python -m mrunc.tools.conformance "$@"
