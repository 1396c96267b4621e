#!/bin/sh
# pid 1 of the user-mode Linux guest (see tests/guest/uml.py). The root is the host's / through hostfs,
# read-only; the only writable host directory is the results directory, mounted at /mnt.
# Until the guest's own proc is mounted, /proc is the host's (seen through hostfs): write nothing before.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
if ! grep -qF "Linux version $(uname -r) " /proc/version; then
    echo "guest: /proc is not the guest's; stopping before anything is written"
    exec /bin/false  # pid 1 exiting panics the guest kernel, which stops it
fi
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# CI may clone the repo anywhere, /tmp included: bind it under /run before /tmp becomes a tmpfs, and run from there.
mkdir -p /run/repo
mount --bind "$GUEST_REPO" /run/repo
case "$GUEST_PYTHON" in "$GUEST_REPO"/*) GUEST_PYTHON="/run/repo${GUEST_PYTHON#"$GUEST_REPO"}" ;; esac
GUEST_REPO=/run/repo
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t hostfs -o "$GUEST_RESULTS" hostfs /mnt
# uml.py has the guest save only the x87/SSE registers of its processes: glibc must not pick its AVX string
# functions, or programs crash (python, static busybox: seen). Containers get it too (tests/conftest.py).
export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX2,-AVX,-EVEX,-AVX_Fast_Unaligned_Load,-ERMS
export MRUNC_TEST_CONTAINER_ENV="GLIBC_TUNABLES=$GLIBC_TUNABLES"
# ctypes' find_library (pyseccomp finds libseccomp with it) runs /sbin/ldconfig with an empty env, and the static
# ldconfig crashes without GLIBC_TUNABLES: bind a wrapper that sets it over ldconfig (a guest mount; dash is fine).
cp /sbin/ldconfig /run/ldconfig.real
printf '#!/bin/sh\nGLIBC_TUNABLES=%s exec /run/ldconfig.real "$@"\n' "$GLIBC_TUNABLES" > /run/ldconfig
chmod 755 /run/ldconfig
mount --bind /run/ldconfig /sbin/ldconfig
export GUEST_REPORT=/mnt/report.jsonl
echo "guest: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd "$GUEST_REPO" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$GUEST_REPO" "$GUEST_PYTHON" -m pytest -p no:cacheprovider \
    -p tests.guest.report -q $(cat /mnt/args) > /mnt/pytest.log 2>&1
echo "$?" > /mnt/status
echo "guest: pytest exited $(cat /mnt/status)"
exec "$GUEST_PYTHON" -I -S -c 'import ctypes; ctypes.CDLL(None).reboot(0x4321FEDC)'  # RB_POWER_OFF
