#!/usr/bin/env bash
# Set up, build the example bundle's busybox rootfs, compile the example config, show the plan, run it.
# Run as root (no sudo needed, none used). It leaves no state behind: the run's state dir is a temporary one,
# removed on the way out; only the rootfs it builds stays (examples/hello/rootfs, ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bundle=examples/hello
rm -rf "$bundle/rootfs"
mkdir -p "$bundle/rootfs"/{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for applet in $("$bundle/rootfs/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$applet"
done
echo "== mrunc compile $bundle/config.json --format text"
.venv/bin/mrunc compile "$bundle/config.json" --format text
state=$(mktemp -d /tmp/mrunc-demo-state.XXXXXX)
trap 'rm -rf "$state"' EXIT
echo "== mrunc run --bundle $bundle demo"
unshare -m --propagation private .venv/bin/mrunc --root "$state" run --bundle "$bundle" demo
