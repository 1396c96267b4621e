"""`mrunc spec [--rootless] [--bundle DIR]`: write a starting config.json, the same document `runc spec` writes."""

import argparse
import json
import os

from mrunc import SPEC_VERSION
from mrunc.commands.common import fail

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


def default_spec() -> dict:
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {kind: list(CAPS) for kind in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": NOSUID_NOEXEC_NODEV + ["mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": NOSUID_NOEXEC_NODEV},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": NOSUID_NOEXEC_NODEV + ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": NOSUID_NOEXEC_NODEV + ["relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def make_rootless(spec: dict) -> dict:
    """As runc: a user namespace mapping only our own ids, no network namespace (an unprivileged user could
    not set one up), /sys bound from the host (sysfs cannot be mounted without one), no cgroup resources."""
    linux = spec["linux"]
    del linux["resources"]
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"] + [{"type": "user"}]
    for mount in spec["mounts"]:
        if mount["destination"] == "/dev/pts":
            mount["options"].remove("gid=5")  # gid 5 is not mapped
        elif mount["destination"] == "/sys":
            mount.update(type="none", source="/sys", options=["rbind"] + NOSUID_NOEXEC_NODEV + ["ro"])
    return spec


def main(options, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mrunc spec")
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--rootless", action="store_true")
    opts = parser.parse_args(args)
    spec = make_rootless(default_spec()) if opts.rootless else default_spec()
    path = os.path.join(opts.bundle, "config.json")
    try:
        with open(path, "x") as f:
            f.write(json.dumps(spec, indent="\t") + "\n")
    except FileExistsError:
        return fail(f"{path}: exists already; remove it first")
    except OSError as e:
        return fail(f"{path}: {e.strerror}")
    return 0
