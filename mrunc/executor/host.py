"""Host facts a plan depends on. The compiler records them; the executor checks them before running."""

import os

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "misc",
                  "net_cls", "net_prio", "perf_event", "pids", "rdma")


def cgroup_layout() -> str:
    """'v2' on a unified hierarchy; 'v1' where controllers live in per-controller hierarchies (also hybrid)."""
    return "v2" if os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers") else "v1"


def fingerprint() -> dict:
    layout = cgroup_layout()
    if layout == "v2":
        with open(f"{CGROUP_ROOT}/cgroup.controllers") as f:
            controllers = sorted(f.read().split())
    else:
        controllers = [c for c in V1_CONTROLLERS if os.path.isdir(f"{CGROUP_ROOT}/{c}")]
    return {"arch": os.uname().machine, "cgroup": layout, "controllers": controllers}
