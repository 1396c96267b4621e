"""Lowering, per concern: a config fragment and the exact ops it becomes (name, process, source, arguments).

Compiled with a fixed host fingerprint and bundle, so nothing here depends on the machine.
"""

import copy
import json

import pytest

from mrunc.compiler.compile import compile_bytes
from mrunc.compiler.errors import ConfigError
from mrunc.compiler.order import lower_exec
from mrunc.executor.flags import CAPABILITIES
from mrunc.tools.regen_plans import HOST_V1, HOST_V2

BUNDLE = "/b"
ROOTFS = "/b/rootfs"
CG = "/mrunc/low"  # the cgroup path compile gives container id "low"
BASE = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"cwd": "/", "args": ["sh"]},
        "linux": {"namespaces": [{"type": "mount"}]}}


def compile_fragment(fragment: dict, host: dict = HOST_V1) -> dict:
    """BASE with the fragment merged in (its process/linux keys update BASE's; other sections replace)."""
    config = copy.deepcopy(BASE)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return compile_bytes(json.dumps(config).encode(), BUNDLE, "low", host)


def ops(plan: dict, *sources: str) -> list[tuple]:
    """(op, proc, src, args) of the ops whose source pointer is one of `sources` or below one."""
    return [(o["op"], o["proc"], o["src"], o["args"]) for o in plan["ops"]
            if any(o["src"] == s or o["src"].startswith(s + "/") for s in sources)]


def names(plan: dict) -> list[str]:
    return [o["op"] for o in plan["ops"]]


def mount(src: str, target: str, *, source=None, fstype=None, flags=(), data=None, root=ROOTFS, create=None) -> tuple:
    return ("mount", "init", src, {"source": source, "target": target, "fstype": fstype, "flags": list(flags),
                                   "data": data, "root": root, "create": create})


def remount(src: str, target: str, flags: list[str], root=ROOTFS) -> tuple:
    return ("remount", "init", src, {"target": target, "flags": flags, "root": root})


# --- namespaces and id maps -----------------------------------------------------------------------

def test_namespaces_join_first_then_user_with_parent_written_maps_then_the_rest():
    plan = compile_fragment({"linux": {
        "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}, {"type": "mount"},
                       {"type": "user"}, {"type": "uts"}, {"type": "cgroup"}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 1}, {"containerID": 5, "hostID": 5, "size": 1}]}})
    assert ops(plan, "/linux/namespaces", "/linux/uidMappings", "/linux/gidMappings") == [
        ("setns", "child", "/linux/namespaces/1", {"type": "network", "path": "/run/netns/x"}),
        ("unshare", "child", "/linux/namespaces/3", {"flags": ["CLONE_NEWUSER"]}),
        ("write_id_map", "runtime", "/linux/uidMappings", {"file": "uid_map", "content": "0 100000 65536\n"}),
        ("write_id_map", "runtime", "/linux/gidMappings", {"file": "gid_map", "content": "0 200000 1\n5 5 1\n"}),
        ("become_ns_root", "child", "/linux/namespaces/3", {}),
        ("unshare", "child", "/linux/namespaces", {"flags": ["CLONE_NEWUTS", "CLONE_NEWPID", "CLONE_NEWNS"]}),
        ("fork_init", "child", "/linux/namespaces", {}),
        ("unshare", "init", "/linux/namespaces", {"flags": ["CLONE_NEWCGROUP"]}),  # once init is in its cgroup
    ]


def test_new_network_namespace_brings_loopback_up_in_init():
    plan = compile_fragment({"linux": {"namespaces": [{"type": "network"}, {"type": "mount"}]}})
    assert ops(plan, "/linux/namespaces") == [
        ("unshare", "child", "/linux/namespaces", {"flags": ["CLONE_NEWNET", "CLONE_NEWNS"]}),
        ("fork_init", "child", "/linux/namespaces", {}),
        ("loopback_up", "init", "/linux/namespaces", {}),
    ]


def test_time_namespace_offsets_are_written_by_child_after_unshare():
    plan = compile_fragment({"linux": {"namespaces": [{"type": "time"}, {"type": "mount"}],
                                       "timeOffsets": {"monotonic": {"secs": 7}, "boottime": {"nanosecs": 3}}}})
    assert ops(plan, "/linux/namespaces", "/linux/timeOffsets")[:2] == [
        ("unshare", "child", "/linux/namespaces", {"flags": ["CLONE_NEWNS", "CLONE_NEWTIME"]}),
        ("set_time_offsets", "child", "/linux/timeOffsets", {"content": "boottime 0 3\nmonotonic 7 0\n"}),
    ]


@pytest.mark.parametrize("mount_ns", [None, "/proc/7/ns/mnt"], ids=["inherited", "joined"])
def test_a_mount_namespace_not_the_containers_own_gets_its_mounts_under_one_rootfs_bind_then_chroot(mount_ns):
    """No mount namespace listed (the runtime's is inherited) or one joined by path: / is not the container's to
    change; init binds the rootfs onto itself, mounts under it and chroots; runtime, before fork, notes the mount
    at the rootfs to detach init's bind at exit."""
    namespaces = [{"type": "pid"}] + ([{"type": "mount", "path": mount_ns}] if mount_ns else [])
    plan = compile_fragment({"linux": {"namespaces": namespaces, "rootfsPropagation": "shared"},
                             "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                             "root": {"path": "rootfs", "readonly": True}})
    assert ops(plan, "/root", "/mounts", "/linux/rootfsPropagation") == [
        ("unmount_at_exit", "runtime", "/root/path", {"root": ROOTFS, "ns": mount_ns}),
        mount("/root/path", ROOTFS, source=ROOTFS, flags=["MS_BIND", "MS_REC"], root=None),
        mount("/mounts/0", "/proc", source="proc", fstype="proc", create="ordinary_dir"),
        ("chroot", "init", "/root/path", {"root": ROOTFS}),
        mount("/linux/rootfsPropagation", "/", flags=["MS_SHARED"], root=None),
        remount("/root/readonly", "/", ["MS_BIND", "MS_REMOUNT", "MS_RDONLY", "MS_REC"], root=None),
    ]
    assert names(plan).index("unmount_at_exit") + 1 == names(plan).index("fork")
    assert "pivot_root" not in names(plan)


# --- rootfs and mounts ----------------------------------------------------------------------------

@pytest.mark.parametrize("propagation, flags, after_pivot", [
    (None, ["MS_PRIVATE", "MS_REC"], []), ("private", ["MS_PRIVATE", "MS_REC"], []),
    ("slave", ["MS_SLAVE", "MS_REC"], []), ("rprivate", ["MS_PRIVATE", "MS_REC"], []),
    ("rslave", ["MS_SLAVE", "MS_REC"], []),
    # pivot_root refuses a shared new root (EINVAL) and an unbindable tree cannot be bound: / stays private until the
    # rootfs is /, then the rootfs mount alone takes the propagation
    ("shared", ["MS_PRIVATE", "MS_REC"], [mount("/linux/rootfsPropagation", "/", flags=["MS_SHARED"], root=None)]),
    ("unbindable", ["MS_PRIVATE", "MS_REC"],
     [mount("/linux/rootfsPropagation", "/", flags=["MS_UNBINDABLE"], root=None)]),
    ("runbindable", ["MS_PRIVATE", "MS_REC"],
     [mount("/linux/rootfsPropagation", "/", flags=["MS_UNBINDABLE"], root=None)])])
def test_root_propagation_then_rootfs_bound_onto_itself(propagation, flags, after_pivot):
    plan = compile_fragment({"linux": {"rootfsPropagation": propagation}} if propagation else {})
    assert ops(plan, "/linux/rootfsPropagation", "/root/path") == [
        mount("/linux/rootfsPropagation", "/", flags=flags, root=None),
        mount("/root/path", ROOTFS, source=ROOTFS, flags=["MS_BIND", "MS_REC"], root=None),
        ("pivot_root", "init", "/root/path", {"root": ROOTFS}),
        *after_pivot,
    ]
    if after_pivot:  # right after pivot_root
        assert names(plan)[names(plan).index("pivot_root") + 1] == "mount"


def test_rshared_root_propagation_keeps_host_peers_makes_the_rootfs_parent_private_and_applies_after_pivot():
    plan = compile_fragment({"linux": {"rootfsPropagation": "rshared"}})
    assert ops(plan, "/linux/rootfsPropagation", "/root/path") == [
        mount("/linux/rootfsPropagation", "/", flags=["MS_SHARED", "MS_REC"], root=None),
        ("mount_parent_private", "init", "/linux/rootfsPropagation", {"path": ROOTFS}),
        mount("/root/path", ROOTFS, source=ROOTFS, flags=["MS_BIND", "MS_REC"], root=None),
        ("pivot_root", "init", "/root/path", {"root": ROOTFS}),
        mount("/linux/rootfsPropagation", "/", flags=["MS_SHARED", "MS_REC"], root=None),
    ]


def test_unknown_root_propagation_is_refused_naming_the_allowed_forms():
    with pytest.raises(Exception) as refused:
        compile_fragment({"linux": {"rootfsPropagation": "rnope"}})
    assert "/linux/rootfsPropagation" in str(refused.value) and "rshared" in str(refused.value)


def test_mount_options_become_flags_data_and_separate_propagation_calls():
    plan = compile_fragment({"mounts": [
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["ro", "nosuid", "nodev", "noexec", "strictatime", "mode=755", "size=1m", "rw", "rslave"]},
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/mq", "type": "mqueue", "options": ["defaults", "noatime", "atime", "relatime", "private"]},
    ]})
    assert ops(plan, "/mounts") == [
        mount("/mounts/0", "/run", source="tmpfs", fstype="tmpfs", create="dir",
              flags=["MS_NODEV", "MS_NOEXEC", "MS_NOSUID", "MS_STRICTATIME"], data="mode=755,size=1m"),
        mount("/mounts/0", "/run", flags=["MS_SLAVE", "MS_REC"]),
        mount("/mounts/1", "/proc", source="proc", fstype="proc", create="ordinary_dir"),
        mount("/mounts/2", "/mq", source="mqueue", fstype="mqueue", flags=["MS_RELATIME"], create="dir"),
        mount("/mounts/2", "/mq", flags=["MS_PRIVATE"]),
    ]


def test_bind_mount_flags_take_a_second_remount_and_relative_sources_are_in_the_bundle():
    plan = compile_fragment({"mounts": [
        {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["bind"]},
    ]})
    assert ops(plan, "/mounts") == [
        mount("/mounts/0", "/data", source="/b/data", flags=["MS_BIND", "MS_REC"], create="auto"),
        remount("/mounts/0", "/data", ["MS_BIND", "MS_REMOUNT", "MS_NOSUID", "MS_RDONLY"]),
        mount("/mounts/1", "/etc/hosts", source="/etc/hosts", flags=["MS_BIND"], create="auto"),
    ]


def test_cgroup_mount_on_v1_is_a_tmpfs_with_each_controller_bound_read_only():
    plan = compile_fragment({"mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                         "options": ["nosuid", "ro"]}]})
    controllers = HOST_V1["controllers"]
    expected = [mount("/mounts/0", "/sys/fs/cgroup", source="tmpfs", fstype="tmpfs", flags=["MS_NOSUID"],
                      data="mode=755", create="dir")]
    for ctrl in controllers:
        target = f"/sys/fs/cgroup/{ctrl}"
        expected += [mount("/mounts/0", target, source=f"/sys/fs/cgroup/{ctrl}{CG}", flags=["MS_BIND", "MS_REC"],
                           create="dir"),
                     remount("/mounts/0", target, ["MS_BIND", "MS_REMOUNT", "MS_NOSUID", "MS_RDONLY"])]
    expected.append(remount("/mounts/0", "/sys/fs/cgroup", ["MS_REMOUNT", "MS_NOSUID", "MS_RDONLY"]))
    assert ops(plan, "/mounts") == expected


def test_cgroup_mount_on_v2_binds_the_containers_own_cgroup():
    plan = compile_fragment({"mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup",
                                         "options": ["ro"]}]}, host=HOST_V2)
    assert ops(plan, "/mounts") == [
        mount("/mounts/0", "/sys/fs/cgroup", source=f"/sys/fs/cgroup{CG}", flags=["MS_BIND", "MS_REC"], create="dir"),
        remount("/mounts/0", "/sys/fs/cgroup", ["MS_BIND", "MS_REMOUNT", "MS_RDONLY"]),
    ]


@pytest.mark.parametrize("mount_entry, pointer", [
    ({"destination": "/x", "type": "tmpfs", "options": ["idmap"]}, "/mounts/0/options/0"),
    ({"destination": "/x", "options": ["bind"]}, "/mounts/0/source"),
    ({"destination": "/x", "source": "x"}, "/mounts/0/type"),
])
def test_mounts_mrunc_cannot_lower_are_refused_naming_the_field(mount_entry, pointer):
    with pytest.raises(ConfigError) as raised:
        compile_fragment({"mounts": [mount_entry]})
    assert raised.value.pointer == pointer


def test_readonly_root_is_a_recursive_bind_remount_right_after_pivot_root():
    plan = compile_fragment({"root": {"path": "rootfs", "readonly": True}})
    i = names(plan).index("pivot_root")
    assert plan["ops"][i + 1] == {"op": "remount", "proc": "init", "src": "/root/readonly", "args": {
        "target": "/", "flags": ["MS_BIND", "MS_REMOUNT", "MS_RDONLY", "MS_REC"], "root": None}}


# --- /dev, masked and read-only paths, sysctl, names ---------------------------------------------------

DEFAULT_NODES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/tty", 5, 0),
                 ("/dev/urandom", 1, 9), ("/dev/random", 1, 8)]
SYMLINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]


def _mknod(src, path, kind, major, minor, mode=0o666, uid=0, gid=0) -> tuple:
    return ("mknod", "init", src, {"root": ROOTFS, "path": path, "type": kind, "major": major, "minor": minor,
                                   "mode": mode, "uid": uid, "gid": gid})


def _symlinks() -> list[tuple]:
    return [("symlink", "init", "/linux/devices", {"root": ROOTFS, "target": t, "link": link}) for t, link in SYMLINKS]


def test_devices_default_nodes_then_listed_ones_in_order_then_symlinks():
    plan = compile_fragment({"linux": {"devices": [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 1, "gid": 2},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
        {"path": "/dev/fifo", "type": "p"}]}})
    expected = [_mknod("/linux/devices", p, "c", ma, mi) for p, ma, mi in DEFAULT_NODES if p != "/dev/null"]
    expected += [_mknod("/linux/devices/0", "/dev/fuse", "c", 10, 229, 0o600, 1, 2),
                 _mknod("/linux/devices/1", "/dev/null", "c", 1, 3),
                 _mknod("/linux/devices/2", "/dev/fifo", "p", 0, 0)]
    assert ops(plan, "/linux/devices") == expected + _symlinks()


def test_devices_in_a_user_namespace_are_host_nodes_bound_onto_files():
    plan = compile_fragment({"linux": {"namespaces": [{"type": "user"}, {"type": "mount"}],
                                       "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                                       "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}})
    binds = [mount("/linux/devices", p, source=p, flags=["MS_BIND"], create="file") for p, _, _ in DEFAULT_NODES]
    assert ops(plan, "/linux/devices") == binds + _symlinks()


def test_names_sysctls_sorted_then_readonly_then_masked_paths_after_pivot_root():
    plan = compile_fragment({"hostname": "h", "domainname": "d", "linux": {
        "namespaces": [{"type": "mount"}, {"type": "uts"}, {"type": "ipc"}],
        "sysctl": {"kernel.shmmax": "1", "fs.mqueue.msg_max": "20"},
        "maskedPaths": ["/proc/kcore", "/sys/firmware"], "readonlyPaths": ["/proc/sys"]}})
    after = plan["ops"][names(plan).index("pivot_root") + 1:]
    assert [(o["op"], o["src"], o["args"]) for o in after[:7]] == [
        ("sethostname", "/hostname", {"name": "h"}),
        ("setdomainname", "/domainname", {"name": "d"}),
        ("sysctl", "/linux/sysctl/fs.mqueue.msg_max", {"key": "fs.mqueue.msg_max", "value": "20"}),
        ("sysctl", "/linux/sysctl/kernel.shmmax", {"key": "kernel.shmmax", "value": "1"}),
        ("readonly_path", "/linux/readonlyPaths/0", {"path": "/proc/sys"}),
        ("mask_path", "/linux/maskedPaths/0", {"path": "/proc/kcore"}),
        ("mask_path", "/linux/maskedPaths/1", {"path": "/sys/firmware"}),
    ]


@pytest.mark.parametrize("key, error", [("kernel.panic", "not a namespaced sysctl"),
                                        ("net.ipv4.ip_forward", "needs a network namespace")])
def test_sysctls_that_would_change_the_host_are_refused(key, error):
    with pytest.raises(ConfigError, match=error) as raised:
        compile_fragment({"linux": {"sysctl": {key: "1"}}})
    assert raised.value.pointer == f"/linux/sysctl/{key}"


# --- cgroups ----------------------------------------------------------------------------------------

RESOURCES = {"memory": {"limit": 1 << 26, "reservation": 1 << 25, "swap": 1 << 27, "swappiness": 10},
             "pids": {"limit": -1},
             "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"}}


def _writes(plan: dict) -> list[tuple[str, str, str, str]]:
    return [(o["args"]["dir"], o["args"]["file"], o["args"]["value"], o["src"]) for o in plan["ops"]
            if o["op"] == "cgroup_write"]


def test_v1_cgroup_is_made_per_controller_with_cpuset_filled_from_its_parent_then_files_written():
    plan = compile_fragment({"linux": {"resources": RESOURCES}})
    made = [(o["op"], o["args"]["dir"]) for o in plan["ops"] if o["op"] in ("cgroup_mkdir", "cgroup_copy_parent")]
    d = {ctrl: f"/sys/fs/cgroup/{ctrl}{CG}" for ctrl in HOST_V1["controllers"]}
    assert made == [("cgroup_mkdir", d["blkio"]), ("cgroup_mkdir", d["cpu"]), ("cgroup_mkdir", d["cpuacct"]),
                    ("cgroup_mkdir", d["cpuset"]), ("cgroup_copy_parent", d["cpuset"]),
                    ("cgroup_copy_parent", d["cpuset"]), ("cgroup_mkdir", d["devices"]),
                    ("cgroup_mkdir", d["freezer"]), ("cgroup_mkdir", d["memory"]), ("cgroup_mkdir", d["pids"])]
    src = "/linux/resources"
    assert _writes(plan) == [
        (d["memory"], "memory.limit_in_bytes", str(1 << 26), f"{src}/memory/limit"),
        (d["memory"], "memory.soft_limit_in_bytes", str(1 << 25), f"{src}/memory/reservation"),
        (d["memory"], "memory.memsw.limit_in_bytes", str(1 << 27), f"{src}/memory/swap"),
        (d["memory"], "memory.swappiness", "10", f"{src}/memory/swappiness"),
        (d["pids"], "pids.max", "max", f"{src}/pids/limit"),
        (d["cpu"], "cpu.shares", "1024", f"{src}/cpu/shares"),
        (d["cpu"], "cpu.cfs_period_us", "100000", f"{src}/cpu/period"),
        (d["cpu"], "cpu.cfs_quota_us", "50000", f"{src}/cpu/quota"),
        (d["cpuset"], "cpuset.cpus", "0-1", f"{src}/cpu/cpus"),
        (d["cpuset"], "cpuset.mems", "0", f"{src}/cpu/mems"),
    ]
    # init joins itself, first thing, through the tasks files child opened on the host right after fork (and after
    # closing its caller's fds)
    i = names(plan).index("fork")
    assert plan["ops"][i + 1]["op"] == "close_caller_fds"
    assert plan["ops"][i + 2] == {"op": "cgroup_open_tasks", "proc": "child", "src": "/linux/cgroupsPath",
                                  "args": {"dirs": list(d.values())}}
    i = names(plan).index("fork_init")
    assert plan["ops"][i + 1] == {"op": "cgroup_join_self", "proc": "init", "src": "/linux/cgroupsPath", "args": {}}
    assert "cgroup_attach" not in names(plan) and "cgroup_joined" not in names(plan)


def test_v2_cgroup_is_one_directory_with_converted_values():
    plan = compile_fragment({"linux": {"resources": RESOURCES | {"unified": {"io.weight": "50"}}}}, host=HOST_V2)
    d = f"/sys/fs/cgroup{CG}"
    assert [(o["op"], o["args"]) for o in plan["ops"] if o["op"] in ("cgroup_mkdir", "cgroup_attach")] == [
        ("cgroup_mkdir", {"dir": d}), ("cgroup_attach", {"dirs": [d]})]
    src = "/linux/resources"
    enable = "+cpu +cpuset +io +memory +pids"  # each ancestor hands the host's controllers down
    assert _writes(plan) == [
        ("/sys/fs/cgroup", "cgroup.subtree_control", enable, "/linux/cgroupsPath"),
        ("/sys/fs/cgroup/mrunc", "cgroup.subtree_control", enable, "/linux/cgroupsPath"),
        (d, "memory.max", str(1 << 26), f"{src}/memory/limit"),
        (d, "memory.low", str(1 << 25), f"{src}/memory/reservation"),
        (d, "memory.swap.max", str((1 << 27) - (1 << 26)), f"{src}/memory/swap"),  # v2 counts swap alone
        (d, "pids.max", "max", f"{src}/pids/limit"),
        (d, "cpu.weight", "39", f"{src}/cpu/shares"),  # 1 + (1024 - 2) * 9999 / 262142
        (d, "cpu.max", "50000 100000", f"{src}/cpu/quota"),
        (d, "cpuset.cpus", "0-1", f"{src}/cpu/cpus"),
        (d, "cpuset.mems", "0", f"{src}/cpu/mems"),
        (d, "io.weight", "50", f"{src}/unified/io.weight"),
    ]


def test_v1_device_rules_in_order_then_the_default_allow_rules():
    plan = compile_fragment({"linux": {"resources": {"devices": [
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": False, "type": "b", "major": 8, "access": "w"}]}}})
    d = f"/sys/fs/cgroup/devices{CG}"
    src = "/linux/resources/devices"
    defaults = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:9 rwm", "c 1:8 rwm",
                "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"]
    assert _writes(plan) == [(d, "devices.deny", "a", f"{src}/0"), (d, "devices.allow", "c 10:229 rw", f"{src}/1"),
                             (d, "devices.deny", "b 8:* w", f"{src}/2")] + \
        [(d, "devices.allow", rule, src) for rule in defaults]


def test_unified_resources_on_a_v1_host_are_refused():
    with pytest.raises(ConfigError, match="needs a cgroup v2 host") as raised:
        compile_fragment({"linux": {"resources": {"unified": {"memory.high": "1"}}}})
    assert raised.value.pointer == "/linux/resources/unified"


HUGE_AND_NET = {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 30}, {"pageSize": "1GB", "limit": 0}],
                "network": {"classID": 7,
                            "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 1}]}}


def test_limits_whose_controller_the_host_lacks_are_checked_first_and_never_written():
    """HOST_V1 (this machine's kind) has no hugetlb, net_cls or net_prio hierarchy: one cgroup_require per controller,
    at the first field needing it, before anything is made (exec fails there); none of their files is written."""
    plan = compile_fragment({"linux": {"resources": HUGE_AND_NET}})
    src = "/linux/resources"

    def require(field: str, ctrl: str) -> tuple:
        return ("cgroup_require", "runtime", f"{src}/{field}", {"controller": ctrl, "dir": f"/sys/fs/cgroup/{ctrl}"})

    assert [(o["op"], o["proc"], o["src"], o["args"]) for o in plan["ops"][:4]] == [
        require("hugepageLimits/0", "hugetlb"), require("network/classID", "net_cls"),
        require("network/priorities/0", "net_prio"),
        ("cgroup_mkdir", "runtime", "/linux/cgroupsPath", {"dir": f"/sys/fs/cgroup/blkio{CG}"})]
    assert names(plan).count("cgroup_require") == 3
    assert _writes(plan) == [] and plan["notes"] == []


def test_hugetlb_and_network_limits_are_written_where_the_host_has_their_v1_controllers():
    host = {**HOST_V1, "controllers": sorted(HOST_V1["controllers"] + ["hugetlb", "net_cls", "net_prio"])}
    plan = compile_fragment({"linux": {"resources": HUGE_AND_NET}}, host=host)
    d = {ctrl: f"/sys/fs/cgroup/{ctrl}{CG}" for ctrl in ("hugetlb", "net_cls", "net_prio")}
    made = [o["args"]["dir"] for o in plan["ops"] if o["op"] == "cgroup_mkdir"]
    assert set(d.values()) <= set(made) and "cgroup_require" not in names(plan)
    src = "/linux/resources"
    assert _writes(plan) == [
        (d["hugetlb"], "hugetlb.2MB.limit_in_bytes", str(1 << 30), f"{src}/hugepageLimits/0"),
        (d["hugetlb"], "hugetlb.1GB.limit_in_bytes", "0", f"{src}/hugepageLimits/1"),
        (d["net_cls"], "net_cls.classid", "7", f"{src}/network/classID"),
        (d["net_prio"], "net_prio.ifpriomap", "eth0 5", f"{src}/network/priorities/0"),
        (d["net_prio"], "net_prio.ifpriomap", "lo 1", f"{src}/network/priorities/1"),
    ]
    assert plan["notes"] == []


def test_a_v2_host_without_hugetlb_checks_its_root_lists_the_controller():
    """cgroup v2 has no network files (a note, as runc leaves them), and hugetlb is one of the root's controllers."""
    plan = compile_fragment({"linux": {"resources": HUGE_AND_NET}}, host=HOST_V2)
    assert ops(plan, "/linux/resources") == [
        ("cgroup_require", "runtime", "/linux/resources/hugepageLimits/0",
         {"controller": "hugetlb", "dir": "/sys/fs/cgroup"})]
    assert plan["ops"][0]["op"] == "cgroup_require"
    assert plan["notes"] == [f"/linux/resources/network/{key}: cgroup v2 has no file for this; not applied"
                             for key in ("classID", "priorities")]


# --- process: rlimits, ids, capabilities, seccomp -------------------------------------------------------

CAPS = {"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_CHOWN"],
        "ambient": ["CAP_CHOWN", "CAP_NET_RAW"]}


def test_process_tail_rlimits_ids_capabilities_in_the_order_runc_uses():
    plan = compile_fragment({"process": {
        "cwd": "/w", "args": ["sh"], "env": ["A=1"], "noNewPrivileges": True, "oomScoreAdj": -5,
        "user": {"uid": 7, "gid": 8, "umask": 18, "additionalGids": [9, 10]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
        "capabilities": CAPS}})
    tail = plan["ops"][names(plan).index("pivot_root") + 1:]
    assert [(o["op"], o["src"], o["args"]) for o in tail] == [
        ("setrlimit", "/process/rlimits/0", {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}),
        ("setrlimit", "/process/rlimits/1", {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}),
        ("oom_score_adj", "/process/oomScoreAdj", {"value": -5}),
        ("umask", "/process/user/umask", {"mask": 18}),
        ("chdir", "/process/cwd", {"path": "/w", "must": False}),
        ("check_program", "/process/args", {"program": "sh", "search_path": None}),
        ("drop_bounding", "/process/capabilities/bounding", {"keep": ["CAP_CHOWN", "CAP_KILL"]}),
        ("keep_caps", "/process/capabilities", {}),
        ("set_ids", "/process/user", {"uid": 7, "gid": 8, "additional_gids": [9, 10]}),
        ("capset", "/process/capabilities", {"effective": ["CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"],
                                             "inheritable": ["CAP_CHOWN"]}),
        ("ambient_raise", "/process/capabilities/ambient", {"caps": ["CAP_CHOWN"]}),
        ("chdir", "/process/cwd", {"path": "/w", "must": True}),
        ("no_new_privs", "/process/noNewPrivileges", {}),
        ("close_fds", "/process", {"preserve": 0}),
        ("default_signals", "/process", {}),
        ("recheck_program", "/process/args", {"program": "sh", "search_path": None}),
        ("execve", "/process/args", {"args": ["sh"], "env": ["A=1"]}),
    ]
    # CAP_NET_RAW is neither permitted nor inheritable: the kernel cannot raise it, so the plan says so.
    assert plan["notes"] == ["/process/capabilities/ambient: CAP_NET_RAW: not permitted and inheritable, so the "
                             "kernel cannot raise them; not raised"]


def test_without_capabilities_or_user_the_plan_touches_no_caps_and_sets_root_and_umask_022():
    plan = compile_fragment({})
    assert not {"drop_bounding", "keep_caps", "capset", "ambient_raise"} & set(names(plan))
    assert ops(plan, "/process/user") == [
        ("umask", "init", "/process/user", {"mask": 0o022}),  # runc's default, not whatever mrunc inherited
        ("set_ids", "init", "/process/user", {"uid": 0, "gid": 0, "additional_gids": []}),
    ]


SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_seccomp_with_no_new_privs_loads_last_just_before_execve():
    """Everything else first (the resolve-in-root chdir's openat2, close_fds' close_range, the signal resets, the
    program's recheck): after the filter only execve, which any usable profile allows."""
    plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"], "noNewPrivileges": True},
                             "linux": {"seccomp": SECCOMP}})
    assert names(plan)[-9:] == ["check_program", "set_ids", "chdir", "no_new_privs", "close_fds", "default_signals",
                                "recheck_program", "seccomp_load", "execve"]


def test_seccomp_without_no_new_privs_is_followed_only_by_the_id_and_capability_calls_and_execve():
    """The filter goes before the capability drop (loading it needs CAP_SYS_ADMIN); what may need a syscall a
    profile lacks goes before the filter, and the chdir after the id change is the plain one (chdir_as_user)."""
    plan = compile_fragment({"process": {"cwd": "/w", "args": ["sh"], "capabilities": CAPS},
                             "linux": {"seccomp": SECCOMP}})
    tail = plan["ops"][names(plan).index("umask"):]
    assert [(o["op"], o["args"]) for o in tail if o["op"] != "seccomp_load"] == [
        ("umask", {"mask": 0o022}),
        ("chdir", {"path": "/w", "must": False}),
        ("check_program", {"program": "sh", "search_path": None}),
        ("close_fds", {"preserve": 0}),
        ("default_signals", {}),
        ("recheck_program", {"program": "sh", "search_path": None}),
        ("drop_bounding", {"keep": ["CAP_CHOWN", "CAP_KILL"]}),
        ("keep_caps", {}),
        ("set_ids", {"uid": 0, "gid": 0, "additional_gids": []}),
        ("capset", {"effective": ["CAP_KILL"], "permitted": ["CAP_CHOWN", "CAP_KILL"], "inheritable": ["CAP_CHOWN"]}),
        ("ambient_raise", {"caps": ["CAP_CHOWN"]}),
        ("chdir_as_user", {"path": "/w"}),
        ("execve", {"args": ["sh"], "env": []}),
    ]
    assert names(plan).index("seccomp_load") == names(plan).index("drop_bounding") - 1
    assert "no_new_privs" not in names(plan)


def test_without_seccomp_or_with_no_new_privs_the_credentials_come_before_the_start_wait_and_hooks():
    """startContainer hooks run as the container's user unless a filter without no_new_privs must load first."""
    hooks = {"startContainer": [{"path": "/bin/true"}]}
    for process, seccomp in (({}, None), ({"noNewPrivileges": True}, SECCOMP)):
        plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"], **process}, "hooks": hooks,
                                 **({"linux": {"seccomp": seccomp}} if seccomp else {})})
        assert names(plan).index("set_ids") < names(plan).index("close_fds") < names(plan).index("hook")
    plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"]}, "hooks": hooks, "linux": {"seccomp": SECCOMP}})
    assert names(plan).index("hook") < names(plan).index("seccomp_load") < names(plan).index("set_ids")


def _hook_ops(plan: dict) -> list[tuple[str, str, dict]]:
    return [(o["proc"], o["src"], {k: v for k, v in o["args"].items() if k != "state"})
            for o in plan["ops"] if o["op"] == "hook"]


def test_start_container_hook_takes_the_filter_and_then_the_credentials_without_no_new_privs():
    """The hook's child runs the steps still ahead of init, those very ops in their order: the filter while it holds
    CAP_SYS_ADMIN, then the capability drop and id change (runc's hooks run after both). Other hooks run as is."""
    hooks = {"createContainer": [{"path": "/bin/true"}],
             "startContainer": [{"path": "/bin/check", "args": ["check", "-v"]}, {"path": "/bin/true"}]}
    plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"], "user": {"uid": 1000, "gid": 1000},
                                         "capabilities": CAPS}, "hooks": hooks, "linux": {"seccomp": SECCOMP}})
    steps = ["seccomp_load", "drop_bounding", "keep_caps", "set_ids", "capset", "ambient_raise"]
    hook = {"kind": "startContainer", "env": None, "timeout": None, "as_process": steps}
    assert _hook_ops(plan) == [
        ("init", "/hooks/createContainer/0", {"kind": "createContainer", "path": "/bin/true", "args": [], "env": None,
                                              "timeout": None, "as_process": []}),
        ("init", "/hooks/startContainer/0", {**hook, "path": "/bin/check", "args": ["check", "-v"]}),
        ("init", "/hooks/startContainer/1", {**hook, "path": "/bin/true", "args": []}),
    ]
    after_hooks = names(plan)[len(names(plan)) - 1 - names(plan)[::-1].index("hook") + 1:]
    assert [n for n in after_hooks if n in steps] == steps  # the very ops init then runs, in that order


def test_start_container_hook_takes_only_the_filter_with_no_new_privs_and_nothing_without_a_filter():
    """With no_new_privs init holds the credentials and no_new_privs before the hooks: the child loads the filter
    (allowed by no_new_privs) right before its execve. Without a filter nothing is ahead of init."""
    hooks = {"startContainer": [{"path": "/bin/true"}]}
    process = {"cwd": "/", "args": ["sh"], "user": {"uid": 1000, "gid": 1000}, "capabilities": CAPS}
    expected = {"kind": "startContainer", "path": "/bin/true", "args": [], "env": None, "timeout": None}
    with_nnp = compile_fragment({"process": {**process, "noNewPrivileges": True}, "hooks": hooks,
                                 "linux": {"seccomp": SECCOMP}})
    assert _hook_ops(with_nnp) == [("init", "/hooks/startContainer/0", {**expected, "as_process": ["seccomp_load"]})]
    assert names(with_nnp).index("no_new_privs") < names(with_nnp).index("hook")
    for nnp in (False, True):
        unfiltered = compile_fragment({"process": {**process, "noNewPrivileges": nnp}, "hooks": hooks})
        assert _hook_ops(unfiltered) == [("init", "/hooks/startContainer/0", {**expected, "as_process": []})]


def test_seccomp_filter_is_compiled_bpf_with_its_readable_form():
    plan = compile_fragment({"linux": {"seccomp": SECCOMP | {"flags": ["SECCOMP_FILTER_FLAG_LOG"]}}})
    (load,) = [o for o in plan["ops"] if o["op"] == "seccomp_load"]
    assert load["src"] == "/linux/seccomp" and load["args"]["flags"] == ["SECCOMP_FILTER_FLAG_LOG"]
    assert 'filter for syscall "mkdir"' in load["args"]["pfc"] and "action ERRNO(1)" in load["args"]["pfc"]
    assert len(load["args"]["bpf"]) % 4 == 0 and len(load["args"]["bpf"]) > 8


@pytest.mark.parametrize("seccomp", [{"defaultAction": "SCMP_ACT_NOTIFY"},
                                     SECCOMP | {"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}])
def test_seccomp_user_notification_is_refused_wherever_it_appears(seccomp):
    with pytest.raises(ConfigError, match="SCMP_ACT_NOTIFY") as raised:
        compile_fragment({"linux": {"seccomp": seccomp}})
    assert raised.value.pointer == "/linux/seccomp"


def test_capability_names_the_kernel_knows_are_all_accepted():
    plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"],
                                         "capabilities": {"bounding": sorted(CAPABILITIES)}}})
    assert ops(plan, "/process/capabilities/bounding")[0][3] == {"keep": sorted(CAPABILITIES)}


# --- process attributes execve keeps ---------------------------------------------------------------

@pytest.mark.parametrize("domain,name", [("LINUX32", "PER_LINUX32"), ("LINUX", "PER_LINUX")])
def test_personality_is_one_op_after_the_paths_and_before_the_process_steps(domain, name):
    plan = compile_fragment({"linux": {"namespaces": [{"type": "mount"}], "personality": {"domain": domain}}})
    assert ops(plan, "/linux/personality") == [("personality", "init", "/linux/personality", {"domain": name})]
    tail = names(plan)[names(plan).index("pivot_root"):]
    assert tail[:3] == ["pivot_root", "personality", "umask"]


def test_scheduler_and_io_priority_are_one_op_each_after_rlimits_while_init_is_root():
    plan = compile_fragment({"process": {
        "cwd": "/", "args": ["sh"], "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
        "scheduler": {"policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_RESET_ON_FORK"], "runtime": 10**6,
                      "deadline": 2 * 10**6, "period": 4 * 10**6},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 3}}})
    assert ops(plan, "/process/scheduler", "/process/ioPriority") == [
        ("sched_setattr", "init", "/process/scheduler", {
            "policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_RESET_ON_FORK"], "nice": 0, "priority": 0,
            "runtime": 10**6, "deadline": 2 * 10**6, "period": 4 * 10**6}),
        ("ioprio_set", "init", "/process/ioPriority", {"io_class": "IOPRIO_CLASS_BE", "priority": 3}),
    ]
    tail = names(plan)[names(plan).index("setrlimit"):]
    assert tail[:4] == ["setrlimit", "sched_setattr", "ioprio_set", "umask"]


def test_scheduler_defaults_nice_and_priority_to_zero_and_io_priority_level_to_zero():
    plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"], "scheduler": {"policy": "SCHED_FIFO",
                                                                                  "priority": 10},
                                         "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}}})
    assert [args for _, _, _, args in ops(plan, "/process/scheduler", "/process/ioPriority")] == [
        {"policy": "SCHED_FIFO", "flags": [], "nice": 0, "priority": 10, "runtime": 0, "deadline": 0, "period": 0},
        {"io_class": "IOPRIO_CLASS_IDLE", "priority": 0}]


@pytest.mark.parametrize("scheduler,error", [
    ({"policy": "SCHED_BATCH", "priority": 5}, "/process/scheduler/priority: only for SCHED_FIFO or SCHED_RR"),
    ({"policy": "SCHED_FIFO"}, "/process/scheduler/priority: got 0; allowed: an integer from 1 to 99"),
    ({"policy": "SCHED_RR", "priority": 100}, "/process/scheduler/priority: got 100; allowed: an integer from 1"),
    ({"policy": "SCHED_OTHER", "runtime": 5}, "/process/scheduler/runtime: only for SCHED_DEADLINE"),
    ({"policy": "SCHED_ISO"}, "/process/scheduler/policy: got \"SCHED_ISO\"; allowed: SCHED_OTHER"),
    ({"policy": "SCHED_DEADLINE", "runtime": 100, "deadline": 200}, "/process/scheduler/runtime: got 100; allowed: at"),
    ({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 1500}, "/process/scheduler/deadline: got 1500"),
    ({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 3000, "period": 2500}, "/process/scheduler/period"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]}, "/process/scheduler/flags/0: got"),
])
def test_scheduler_fields_the_policy_does_not_take_are_refused_naming_the_field(scheduler, error):
    with pytest.raises(ConfigError, match="^" + error.replace("(", r"\(")):
        compile_fragment({"process": {"cwd": "/", "args": ["sh"], "scheduler": scheduler}})


def test_exec_cpu_affinity_initial_before_the_cgroup_join_final_in_init_after_it():
    process = {"cwd": "/", "args": ["sh"], "execCPUAffinity": {"initial": "0-2, 5", "final": "1"}}
    plan = lower_exec(process, {"pid": 9, "cgroups": ["/sys/fs/cgroup/cpuset/c"], "cgroup": "v1",
                                "namespaces": ["mount"], "rootfs": ""}, None, None, 0, False)
    assert [(o["op"], o["proc"], o["src"], o["args"]) for o in plan.ops if o["op"] == "sched_setaffinity"] == [
        ("sched_setaffinity", "child", "/process/execCPUAffinity/initial", {"cpus": [0, 1, 2, 5]}),
        ("sched_setaffinity", "init", "/process/execCPUAffinity/final", {"cpus": [1]})]
    order = [o["op"] for o in plan.ops]
    assert order.index("sched_setaffinity") + 1 == order.index("cgroup_enter")
    assert order[order.index("fork_init") + 1] == "sched_setaffinity"


def test_exec_cpu_affinity_in_a_config_is_a_note_not_an_op_for_init():
    plan = compile_fragment({"process": {"cwd": "/", "args": ["sh"], "execCPUAffinity": {"final": "1"}}})
    assert "sched_setaffinity" not in names(plan)
    assert plan["notes"] == ["/process/execCPUAffinity: not for the container's init (config.md); applied to the "
                             "processes `mrunc exec` adds"]


@pytest.mark.parametrize("text", ["3-1", "0-", "9999", "1,,-2"])
def test_exec_cpu_affinity_that_is_no_cpu_list_is_refused_naming_the_field(text):
    with pytest.raises(ConfigError, match=f"^/process/execCPUAffinity/final: got \"{text}\"; allowed: CPU numbers"):
        compile_fragment({"process": {"cwd": "/", "args": ["sh"], "execCPUAffinity": {"final": text}}})


@pytest.mark.parametrize("namespaces, chrooted, chroot", [
    (["mount", "pid"], False, False),  # the container's own mount namespace: joining it makes its root ours
    (["mount", "pid"], True, True),  # one it joined by path: the container is a chroot in it, and so is the exec
    (["pid"], True, True),  # none: the runtime's, where it is a chroot
])
def test_exec_chroots_into_a_container_that_is_a_chroot(namespaces, chrooted, chroot):
    from mrunc.compiler.compile_exec import exec_target

    container = compile_fragment({"linux": {"namespaces": [
        {"type": kind, **({"path": "/proc/7/ns/mnt"} if kind == "mount" and chrooted else {})}
        for kind in namespaces]}})
    target = exec_target({"pid": 9, "rootfs": ROOTFS}, container)
    assert target["chrooted"] == chrooted
    plan = lower_exec({"cwd": "/", "args": ["sh"]}, target, None, None, 0, False)
    found = [(o["op"], o["proc"], o["src"], o["args"]) for o in plan.ops if o["op"] == "chroot"]
    assert found == ([("chroot", "init", "/container/rootfs", {"root": ROOTFS})] if chroot else [])


@pytest.mark.parametrize("no_new_privs", [True, False], ids=["nnp", "no-nnp"])
def test_exec_loads_the_containers_filter_after_its_pid_file_and_detach_wait(no_new_privs):
    """`mrunc exec ID -d --pid-file`: the runtime's pid file and the wait for mrunc's exit come before the filter
    (init would otherwise hand over and wait under it); after it, as for a container, only what rule 8 allows."""
    from mrunc.compiler.compile_exec import exec_target

    container = compile_fragment({"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}], "seccomp": SECCOMP}})
    target = exec_target({"pid": 9, "rootfs": ROOTFS}, container)
    process = {"cwd": "/w", "args": ["sh"], "noNewPrivileges": no_new_privs, "user": {"uid": 5, "gid": 5}}
    plan = lower_exec(process, target, None, "/run/pid", 0, True)
    order = [o["op"] for o in plan.ops]
    tail = order[order.index("close_fds"):]
    if no_new_privs:
        assert tail == ["close_fds", "write_pid_file", "wait_runtime_exit", "default_signals", "recheck_program",
                        "seccomp_load", "execve"]
    else:
        assert tail == ["close_fds", "write_pid_file", "wait_runtime_exit", "default_signals", "recheck_program",
                        "seccomp_load", "set_ids", "chdir_as_user", "execve"]


@pytest.mark.parametrize(("limit_in_force", "new_limit", "first"), [
    (100 << 20, 200 << 20, "memory.memsw.limit_in_bytes"),  # limit raised: memsw first, to make room above it
    (100 << 20, -1, "memory.memsw.limit_in_bytes"),         # limit removed: likewise
    (200 << 20, 100 << 20, "memory.limit_in_bytes"),        # limit lowered: it first, so the lower memsw fits
    (0, 200 << 20, "memory.limit_in_bytes"),                # no limit in force: memsw is unlimited, limit first
])
def test_update_on_v1_orders_limit_and_memsw_so_the_limit_stays_under_memsw(limit_in_force, new_limit, first):
    from mrunc.compiler import lower_cgroups, order
    from mrunc.compiler.emit import Emitter

    memory = {"limit": new_limit, "swap": 400 << 20}
    writes = order.update_writes_v1(lower_cgroups._v1_writes({"memory": memory}, Emitter()), memory, limit_in_force)
    assert [w[1] for w in writes][0] == first
    assert sorted(w[1] for w in writes) == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
