#!/usr/bin/env bash
# The start-up benchmark (bench/run.py): mrunc exec/run against runc and crun, growth with mounts and seccomp
# rules, compile time of podman's config, a profile. Writes docs/benchmarks.md. Run as root. Extra arguments
# go to bench/run.py (--runs N, --output FILE, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python bench/run.py "$@"
