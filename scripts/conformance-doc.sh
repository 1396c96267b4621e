#!/usr/bin/env bash
# Regenerate docs/conformance.md: run the conformance suite against this checkout's mrunc, then against runc
# (Debian's), on this machine, and write the two side by side with each failure's cause
# (conformance/causes.txt) and evidence. As root. Outputs are kept under build/conformance/results.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/conformance/results
mkdir -p "$out"
scripts/conformance.sh --keep --results "$out/mrunc.json" | tee "$out/mrunc.log" || true
scripts/conformance.sh --keep --runtime "$(command -v runc)" --results "$out/runc.json" | tee "$out/runc.log" || true
.venv/bin/python -m mrunc.tools.conformance_doc "$out/mrunc.json" "$out/runc.json"
