"""Real engines (podman + conmon, containerd + ctr) driving mrunc, in a sandbox that keeps the host as it was.

The sandbox is a long-lived holder process in its own mount and network namespaces, with fresh tmpfs on
/run, /var/lib and /dev/shm. Every engine command runs in it (nsenter), so the engines' state files, network
bridges, firewall rules and lock files live and die there. Storage and configuration live in the test's
temp dir; cgroups go under the test session's cgroup parent, passed to each engine explicitly. Closing the
sandbox kills, by pid, every process still in its mount namespace, then the holder.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO, SECCOMP_CACHE, TEST_CGROUP_PARENT

SANDBOX_TOOLS = ("unshare", "nsenter", "ip")  # what the sandbox itself runs

HOLDER_SETUP = ("mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /dev/shm"
                " && ip link set lo up && echo ready && exec sleep infinity")


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.holder = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
                                        HOLDER_SETUP], stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline() == "ready\n", "sandbox setup failed"
        self.mount_ns = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
        self.runtime = self._write_runtime()

    def _write_runtime(self, **env: str) -> Path:
        """The runtime engines call: mrunc from this checkout, logging each call's arguments; `env` is exported."""
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        path = bin_dir / "mrunc"
        # The engines pass the runtime an environment of their own: the session's seccomp cache goes explicitly.
        exports = "".join(f"export {name}={value}\n" for name, value in {"MRUNC_SECCOMP_CACHE": SECCOMP_CACHE,
                                                                           **env}.items())
        path.write_text(f'#!/bin/sh\necho "$*" >> {self.tmp}/calls.log\n{exports}'
                        f'exec {sys.executable} -I -S {REPO}/bin/mrunc "$@"\n')
        path.chmod(0o755)
        return path

    @contextmanager
    def runtime_env(self, **env: str) -> Iterator[None]:
        """Engines call mrunc with these variables set (MRUNC_POLICY, say) until the block ends."""
        self._write_runtime(**env)
        try:
            yield
        finally:
            self._write_runtime()

    def calls(self) -> list[str]:
        """Every mrunc command line the engines ran so far."""
        log = self.tmp / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def command(self, *args: str) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *args]

    def run(self, *args: str, env: dict | None = None, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=env, capture_output=True, text=True, timeout=timeout,
                              **kwargs)

    def close(self) -> None:
        """Kill every process left in the sandbox (by pid), then the holder; remove our cgroups."""
        for _ in range(50):
            stray = [pid for pid in self._members() if pid != self.holder.pid]
            if not stray:
                break
            for pid in stray:
                _kill(pid)
            time.sleep(0.1)
        self.holder.kill()
        self.holder.wait()

    def _members(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "ns" / "mnt") == self.mount_ns:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cgroup_parent(name: str) -> str:
    """A cgroup parent for one engine test, under the session's parent (conftest removes that)."""
    return f"/{TEST_CGROUP_PARENT}/{name}"


def remove_cgroups(parent: str, seconds: float = 5) -> list[str]:
    """rmdir the parent's tree in every hierarchy, deepest first (retrying while an engine's last process
    exits), and the session's parent if that is empty now, as mrunc does with the parents it made.
    Returns what could not be removed."""
    deadline = time.monotonic() + seconds
    while (left := _rmdir_tree(parent)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for session in Path("/sys/fs/cgroup").glob(f"*/{TEST_CGROUP_PARENT}"):
        try:
            session.rmdir()
        except OSError:
            pass
    return left


def _rmdir_tree(parent: str) -> list[str]:
    left = []
    for top in Path("/sys/fs/cgroup").glob(f"*{parent}"):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
            try:
                d.rmdir()
            except OSError:
                left.append(str(d))
    return left


# podman's default ulimits (nofile 1048576, nproc 4194304) would raise the hard limits, which root cannot without
# CAP_SYS_RESOURCE (this session lacks it): the containers get 20000 open files and 32768 processes, or this host's
# hard limit where it is lower.
def _at_most_hard(kind: int, wanted: int) -> int:
    hard = resource.getrlimit(kind)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


PODMAN_ULIMITS = {"nofile": _at_most_hard(resource.RLIMIT_NOFILE, 20000),
                  "nproc": _at_most_hard(resource.RLIMIT_NPROC, 32768)}


def podman_env(work: Path, runtimes: dict[str, str], default: str | None = None) -> dict[str, str]:
    """A podman of its own: containers.conf and storage.conf written in `work`, which also holds its storage, run
    root, network config and events; `runtimes`: name -> path of each OCI runtime it may use (`default` the one
    it uses without --runtime). Returns the environment that points podman at them."""
    default_line = f'runtime = "{default}"\n' if default else ""
    table = "\n".join(f'{name} = ["{path}"]' for name, path in runtimes.items())
    (work / "containers.conf").write_text(f"""
[containers]
default_ulimits = {json.dumps([f"{name}={limit}:{limit}" for name, limit in PODMAN_ULIMITS.items()])}
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{work}/events.log"
{default_line}runtime_supports_json = {json.dumps(list(runtimes))}
tmp_dir = "{work}/libpod-tmp"
static_dir = "{work}/storage/libpod"
volume_path = "{work}/volumes"
[engine.runtimes]
{table}
[network]
network_config_dir = "{work}/networks"
""")
    (work / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{work}/storage"\n'
                                       f'runroot = "{work}/runroot"\n')
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CONTAINERS_CONF": str(work / "containers.conf"), "CONTAINERS_STORAGE_CONF": str(work / "storage.conf")}


def rootfs_tar(rootfs: Path, dest: Path) -> Path:
    """A tar of the busybox rootfs, for `podman import`."""
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(dest), "."], check=True)
    return dest


def wait_for(condition, seconds: float = 10) -> bool:
    """Poll `condition` every 0.1 s until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
