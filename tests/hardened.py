"""A hardened config for attack and fault tests: user namespace (container root is host uid 100000),
every namespace, cgroup limits, seccomp on all three x86 ABIs, no_new_privs, a read-only root, masked and
read-only paths, and an unprivileged user.

A container of it needs user namespaces, the memory, pids and cpu controllers (it sets their limits; a host without
one refuses the container, as runc does) and seccomp: tests that run one use `needs_hardened` (or call
`skip_unless_hardened()` where only some of their cases run one), which skips them naming what is missing."""

from pathlib import Path

import pytest

from mrunc.executor.host import fingerprint
from tests.conftest import base_config

HOST_ID = 100000  # container uid/gid 0 maps here; the host has no such user
LIMITED = ("memory", "pids", "cpu")  # the controllers whose limits it sets


def hardened_config(args: list[str], uid: int = 1000) -> dict:
    config = base_config(args)
    config["process"]["user"] = {"uid": uid, "gid": uid}
    linux = config["linux"]
    linux["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    linux["resources"].update({"memory": {"limit": 64 << 20}, "pids": {"limit": 64}, "cpu": {"shares": 512}})
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["kexec_load", "open_by_handle_at"], "action": "SCMP_ACT_ERRNO"}],
    }
    return config


def lacking(controllers: tuple[str, ...], userns: bool = True) -> list[str]:
    """What a container with limits of these controllers, seccomp and (`userns`) a user namespace needs that this host
    lacks (empty: nothing)."""
    missing = []
    max_userns = Path("/proc/sys/user/max_user_namespaces")
    if userns and (not Path("/proc/self/ns/user").exists() or not max_userns.exists()):
        missing.append("user namespaces (a kernel without CONFIG_USER_NS)")
    elif userns and max_userns.read_text().strip() == "0":
        missing.append("user namespaces (user.max_user_namespaces = 0)")
    have = fingerprint()["controllers"]
    missing += [f"the {name} cgroup controller" for name in controllers if name not in have]
    if "Seccomp:" not in Path("/proc/self/status").read_text():
        missing.append("seccomp filters (a kernel without CONFIG_SECCOMP)")
    return missing


MISSING = lacking(LIMITED)
WHY = f"the hardened config needs {', '.join(MISSING)}, which this host lacks"
needs_hardened = pytest.mark.skipif(bool(MISSING), reason=WHY)


def skip_unless_hardened() -> None:
    """For a test whose hardened case is one of several (a parameter): skip that case where the host cannot run it."""
    if MISSING:
        pytest.skip(WHY)
