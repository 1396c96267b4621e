"""Properties of the compiler, checked with hypothesis on generated configs.

Two sources of configs: anything our schema admits (hypothesis-jsonschema, grafted onto a real config so
generation reaches past the first missing field), where compile may refuse but only with ConfigError; and
configs built to be valid, where compile must succeed and the plan must keep its structural promises.
Examples per property: MRUNC_HYPOTHESIS_EXAMPLES (default 30; schema configs are slower to draw, so they get
a third of that) and, for the slow-marked run on schema configs, MRUNC_HYPOTHESIS_SLOW_EXAMPLES (default 60).
The examples are the same on every run, so a landing never fails on a bug it did not bring; set
MRUNC_HYPOTHESIS_RANDOM=1 (and raise the counts) to search for new ones.
"""

import json
import os
import posixpath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from mrunc.compiler import load
from mrunc.compiler.compile import compile_bytes, dumps
from mrunc.compiler.errors import ConfigError, ConfigErrors
from mrunc.executor import coverage
from mrunc.executor.flags import CAPABILITIES, RLIMITS
from mrunc.executor.plan import check_structure
from mrunc.tools.regen_plans import HOST_V1, HOST_V2

EXAMPLES = int(os.environ.get("MRUNC_HYPOTHESIS_EXAMPLES", "30"))
SLOW_EXAMPLES = int(os.environ.get("MRUNC_HYPOTHESIS_SLOW_EXAMPLES", "60"))
BUNDLE = "/b"
ROOTFS = "/b/rootfs"
SCHEMA = load.schema()
HOSTS = st.sampled_from([HOST_V1, HOST_V2])


COMMON = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None,
          "derandomize": os.environ.get("MRUNC_HYPOTHESIS_RANDOM") != "1"}
quick = settings(max_examples=EXAMPLES, **COMMON)
few = settings(max_examples=max(1, EXAMPLES // 3), **COMMON)
slow = settings(max_examples=SLOW_EXAMPLES, **COMMON)


def compile_config(config: dict, host: dict) -> dict:
    return compile_bytes(json.dumps(config).encode(), BUNDLE, "prop", host)


def _sub_schema(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        node = node[key]
    return {"definitions": SCHEMA["definitions"], **node}


# --- configs from the schema ---------------------------------------------------------------------

BASE = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"cwd": "/", "args": ["sh"]},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}}


SECTIONS = ("process", "linux", "mounts", "root", "hostname", "domainname")


@st.composite
def schema_configs(draw) -> dict:
    """A real base config with some sections replaced by ones drawn from the schema (a whole config drawn
    from the schema nearly always stops at the missing /process)."""
    config = json.loads(json.dumps(BASE))
    for section in draw(st.lists(st.sampled_from(SECTIONS), min_size=1, max_size=3, unique=True)):
        config[section] = draw(from_schema(_sub_schema("properties", section)))
    return config


def _never_raises_anything_but_config_errors(config: dict, host: dict) -> None:
    try:
        compile_config(config, host)
    except (ConfigError, ConfigErrors):
        pass


@few
@given(schema_configs(), HOSTS)
def test_compile_raises_only_config_errors_on_schema_configs(config, host):
    _never_raises_anything_but_config_errors(config, host)


@pytest.mark.slow
@slow
@given(schema_configs(), HOSTS)
def test_compile_raises_only_config_errors_on_schema_configs_at_size(config, host):
    _never_raises_anything_but_config_errors(config, host)


# --- valid configs --------------------------------------------------------------------------------

NAMES = st.text("abcxyz", min_size=1, max_size=4)
PATHS = st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
CAP_SETS = st.lists(st.sampled_from(sorted(CAPABILITIES)), max_size=6, unique=True)
MOUNT_OPTIONS = st.lists(st.sampled_from(["ro", "rw", "nosuid", "nodev", "noexec", "relatime", "strictatime",
                                          "noatime", "private", "rslave", "shared", "mode=755", "size=1m"]),
                         max_size=4)


@st.composite
def mounts(draw) -> dict:
    kind = draw(st.sampled_from(["tmpfs", "proc", "sysfs", "mqueue", "devpts", "bind", "rbind", "cgroup"]))
    mount = {"destination": draw(PATHS), "options": draw(MOUNT_OPTIONS)}
    if kind in ("bind", "rbind"):
        mount |= {"type": "bind", "source": draw(st.sampled_from(["/tmp", "/etc/hosts", "data"]))}
        mount["options"].append(kind)
    else:
        mount |= {"type": kind, "source": kind}
    return mount


DEVICES = st.builds(lambda path, kind, major, minor: {"path": "/dev" + path, "type": kind, "major": major,
                                                      "minor": minor},
                    PATHS, st.sampled_from("cbup"), st.integers(1, 255), st.integers(0, 255))
SECCOMP = st.builds(
    lambda default, names: {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"],
                            "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]},
    st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]),
    st.lists(st.sampled_from(["mkdir", "chmod", "unshare", "ptrace", "mount"]), min_size=1, max_size=3, unique=True))
RLIMIT = st.builds(lambda kind, soft, extra: {"type": kind, "soft": soft, "hard": soft + extra},
                   st.sampled_from(sorted(RLIMITS)), st.integers(0, 1 << 20), st.integers(0, 1 << 20))


@st.composite
def valid_configs(draw) -> dict:
    namespaces = ["mount"] + draw(st.lists(st.sampled_from(["pid", "network", "ipc", "uts", "cgroup", "user"]),
                                           unique=True))
    linux: dict = {"namespaces": [{"type": t} for t in draw(st.permutations(namespaces))],
                   "devices": draw(st.lists(DEVICES, max_size=4, unique_by=lambda d: d["path"])),
                   "maskedPaths": draw(st.lists(PATHS, max_size=3)),
                   "readonlyPaths": draw(st.lists(PATHS, max_size=3)),
                   "resources": {"pids": {"limit": draw(st.integers(-1, 1000))},
                                 "memory": {"limit": draw(st.integers(1 << 20, 1 << 30))}}}
    if "user" in namespaces:
        linux["uidMappings"] = linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    if draw(st.booleans()):
        linux["seccomp"] = draw(SECCOMP)
    process = {"cwd": draw(PATHS), "args": ["sh", "-c", draw(NAMES)], "env": ["PATH=/bin"],
               "noNewPrivileges": draw(st.booleans()),
               "user": {"uid": draw(st.integers(0, 65535)), "gid": draw(st.integers(0, 65535))},
               "rlimits": draw(st.lists(RLIMIT, max_size=3, unique_by=lambda r: r["type"]))}
    if draw(st.booleans()):
        process["capabilities"] = {k: draw(CAP_SETS) for k in
                                   ("bounding", "effective", "permitted", "inheritable", "ambient")}
    config = {"ociVersion": "1.2.0", "root": {"path": "rootfs", "readonly": draw(st.booleans())},
              "process": process, "mounts": draw(st.lists(mounts(), max_size=6)), "linux": linux}
    if "uts" in namespaces:
        config["hostname"] = draw(NAMES)
    return config


def _indexes(plan: dict, prefix: str) -> list[int]:
    """The list index each op's source names under `prefix` (/mounts -> [0, 0, 1, 3, ...])."""
    return [int(o["src"][len(prefix) + 1:].split("/")[0]) for o in plan["ops"] if o["src"].startswith(prefix + "/")]


def _op_index(plan: dict, *names: str) -> list[int]:
    return [i for i, o in enumerate(plan["ops"]) if o["op"] in names]


@quick
@given(valid_configs(), HOSTS)
def test_valid_config_compiles_to_a_plan_the_executor_accepts(config, host):
    plan = compile_config(config, host)
    check_structure(plan)
    assert coverage.gaps(plan, config) == []


@quick
@given(valid_configs(), HOSTS)
def test_compile_is_deterministic_and_survives_a_json_round_trip(config, host):
    first, second = dumps(compile_config(config, host)), dumps(compile_config(config, host))
    assert first == second
    assert dumps(json.loads(first)) == first


@quick
@given(valid_configs(), HOSTS)
def test_mounts_and_devices_keep_their_listed_order(config, host):
    plan = compile_config(config, host)
    mount_srcs = _indexes(plan, "/mounts")
    assert mount_srcs == sorted(mount_srcs)
    assert set(mount_srcs) == set(range(len(config["mounts"])))
    device_srcs = _indexes(plan, "/linux/devices")
    assert device_srcs == sorted(device_srcs) and set(device_srcs) == set(range(len(config["linux"]["devices"])))


@quick
@given(valid_configs(), HOSTS)
def test_every_mount_lands_inside_the_rootfs(config, host):
    """Only two mounts touch paths outside the rootfs: / made private and the rootfs bound onto itself.
    The rest name a target inside `root`; after pivot_root, paths are the container's own."""
    plan = compile_config(config, host)
    pivot = _op_index(plan, "pivot_root")[0]
    for i, o in enumerate(plan["ops"]):
        if o["op"] not in ("mount", "remount"):
            continue
        args = o["args"]
        if i > pivot:
            assert args["root"] is None and o["src"] == "/root/readonly"
        elif args["root"] is None:
            assert (args["target"], args["flags"]) in (("/", ["MS_PRIVATE", "MS_REC"]),
                                                         (ROOTFS, ["MS_BIND", "MS_REC"]))
        else:
            assert args["root"] == ROOTFS
            assert posixpath.normpath(ROOTFS + "/" + args["target"]).startswith(ROOTFS + "/")
    masks = _op_index(plan, "mask_path", "readonly_path")
    assert all(i > pivot for i in masks)


@quick
@given(valid_configs(), HOSTS)
def test_pivot_root_precedes_execve_and_nothing_follows_execve(config, host):
    plan = compile_config(config, host)
    assert _op_index(plan, "execve") == [len(plan["ops"]) - 1]
    assert len(_op_index(plan, "pivot_root")) == 1


@quick
@given(valid_configs(), HOSTS)
def test_capabilities_granted_are_a_subset_of_the_configs(config, host):
    plan = compile_config(config, host)
    caps = config["process"].get("capabilities")
    granted = {o["op"]: o["args"] for o in plan["ops"] if o["op"] in ("drop_bounding", "capset", "ambient_raise")}
    if caps is None:
        assert not granted
        return
    assert set(granted["drop_bounding"]["keep"]) <= set(caps["bounding"])
    for kind in ("effective", "permitted", "inheritable"):
        assert set(granted["capset"][kind]) <= set(caps[kind])
    raised = set(granted.get("ambient_raise", {}).get("caps", []))
    assert raised <= set(caps["ambient"]) & set(caps["permitted"]) & set(caps["inheritable"])


@quick
@given(valid_configs(), HOSTS)
def test_seccomp_loads_last_with_no_new_privs_and_before_the_id_change_without(config, host):
    plan = compile_config(config, host)
    loads = _op_index(plan, "seccomp_load")
    assert len(loads) == ("seccomp" in config["linux"])
    if loads and config["process"]["noNewPrivileges"]:
        assert loads[0] == len(plan["ops"]) - 2
    elif loads:
        assert loads[0] < _op_index(plan, "set_ids")[0]
