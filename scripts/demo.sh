#!/usr/bin/env bash
# Set up, build the example bundle's busybox rootfs, compile the example config, show the plan, run it.
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
echo "== mrunc run --bundle $bundle demo"
exec unshare -m --propagation private .venv/bin/mrunc --root /tmp/mrunc-demo-state run --bundle "$bundle" demo
