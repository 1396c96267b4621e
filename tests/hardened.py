"""A hardened config for attack and fault tests: user namespace (container root is host uid 100000),
every namespace, cgroup limits, seccomp on all three x86 ABIs, no_new_privs, a read-only root, masked and
read-only paths, and an unprivileged user."""

from tests.conftest import base_config

HOST_ID = 100000  # container uid/gid 0 maps here; the host has no such user


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
