"""`mrunc features`: what this runtime implements, as the runtime-spec's features document (features.md).

Each list is read from the table that implements it, so the document cannot claim more than the code does.
"""

import json
import sys

from mrunc import SPEC_VERSION

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
SECCOMP_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP")
# WAIT_KILLABLE_RECV only means something with a notify listener, which mrunc does not offer.
SECCOMP_FLAGS = ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC")


def features() -> dict:
    from mrunc.compiler import lower_process, lower_rootfs, lower_seccomp
    from mrunc.executor.flags import CAPABILITIES

    mount_options = {**lower_rootfs.FLAG_OPTIONS, **lower_rootfs.BIND_OPTIONS, **lower_rootfs.PROPAGATION_OPTIONS}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": sorted(mount_options),
        "linux": {
            "namespaces": sorted(lower_process.NAMESPACE_ORDER),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.__getitem__),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {
                "enabled": True,
                "actions": list(SECCOMP_ACTIONS),
                "operators": sorted(lower_seccomp.COMPARE),
                "archs": sorted(lower_seccomp.ARCHES),
                "knownFlags": list(SECCOMP_FLAGS),
                "supportedFlags": list(SECCOMP_FLAGS),
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
            "netDevices": {"enabled": True},
        },
    }


def main(options, args: list[str]) -> int:
    if args:
        print("mrunc: usage: mrunc features", file=sys.stderr)
        return 2
    print(json.dumps(features(), indent=4))
    return 0
