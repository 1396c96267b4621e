"""Properties of audit and diff on generated configs (a real config's shape with the security-relevant fields
drawn): diff(a, a) is empty; diff(a, b) is empty iff the plans are equal; adding a capability never lowers the
finding count and adding a host mount raises it; every finding's pointer exists in the config.
Examples per property: MRUNC_HYPOTHESIS_EXAMPLES (default 30)."""

import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from mrunc.compiler.compile import compile_bytes
from mrunc.executor.flags import CAPABILITIES
from mrunc.review import audit, profiles
from mrunc.review.diff import diff
from mrunc.review.inputs import Subject, existing_pointer
from mrunc.tools.regen_plans import HOST_V1
from tests.conftest import base_config

SETTINGS = settings(max_examples=int(os.environ.get("MRUNC_HYPOTHESIS_EXAMPLES", "30")), deadline=None)
HOST_MOUNTS = (("/", "/host"), ("/etc", "/host-etc"), ("/var/run/docker.sock", "/var/run/docker.sock"),
               ("/srv", "/srv"), ("/proc", "/host-proc"), ("/dev", "/host-dev"))
SECCOMP = {
    "none": None,
    # what init makes after the filter (the allocator, the id and capability calls), else compile refuses it
    "deny": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
             "syscalls": [{"names": ["read", "write", "exit_group", "execve", "brk", "mmap", "munmap", "prctl",
                                     "setgroups", "setresgid", "setresuid", "capset"], "action": "SCMP_ACT_ALLOW"}]},
    "allow": {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["keyctl", "bpf"], "action": "SCMP_ACT_ERRNO"}]},
}
ALL_CAPS = sorted(CAPABILITIES)

params = st.fixed_dictionaries({
    "caps": st.sets(st.sampled_from(ALL_CAPS), max_size=5),
    "namespaces": st.sets(st.sampled_from(["pid", "ipc", "uts", "network", "cgroup"])),
    "nnp": st.booleans(),
    "uid": st.sampled_from([0, 1000]),
    "mounts": st.lists(st.tuples(st.sampled_from(HOST_MOUNTS), st.booleans()), max_size=2, unique_by=lambda m: m[0]),
    "seccomp": st.sampled_from(sorted(SECCOMP)),
    "masked": st.booleans(),
    "memory": st.sampled_from([None, 64 << 20]),
})


def config_of(p: dict) -> dict:
    config = base_config(["true"])
    caps = sorted(p["caps"])
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    config["process"]["noNewPrivileges"] = p["nnp"]
    config["process"]["user"] = {"uid": p["uid"], "gid": p["uid"]}
    linux = config["linux"]
    linux["namespaces"] = [{"type": "mount"}] + [{"type": kind} for kind in sorted(p["namespaces"])]
    if "uts" not in p["namespaces"]:
        del config["hostname"]
    for (source, destination), read_only in p["mounts"]:
        config["mounts"].append({"destination": destination, "type": "bind", "source": source,
                                 "options": ["rbind", "ro" if read_only else "rw"]})
    if SECCOMP[p["seccomp"]]:
        linux["seccomp"] = SECCOMP[p["seccomp"]]
    if not p["masked"]:
        del linux["maskedPaths"]
    if p["memory"]:
        linux["resources"]["memory"] = {"limit": p["memory"]}
    return config


def compiled(config: dict) -> dict:
    return compile_bytes(json.dumps(config).encode(), "/b", "prop", HOST_V1)


def finding_count(config: dict) -> int:
    return len(audit.audit(Subject("c", compiled(config), config, ""), profiles.load("restricted")).findings)


@SETTINGS
@given(params)
def test_diff_of_a_plan_with_itself_is_empty(p):
    plan = compiled(config_of(p))
    assert diff(plan, plan) == []


@SETTINGS
@given(params, st.data())
def test_diff_is_empty_iff_the_plans_are_equal(p, data):
    q = data.draw(st.one_of(st.just(p), params, st.builds(lambda c: {**p, "caps": c}, params.map(lambda x: x["caps"]))))
    a, b = compiled(config_of(p)), compiled(config_of(q))
    assert (diff(a, b) == []) == (a["ops"] == b["ops"])


@SETTINGS
@given(params, st.sampled_from(ALL_CAPS))
def test_adding_a_capability_never_lowers_the_finding_count(p, cap):
    more = {**p, "caps": p["caps"] | {cap}}
    assert finding_count(config_of(more)) >= finding_count(config_of(p))


@SETTINGS
@given(params, st.sampled_from(HOST_MOUNTS), st.booleans())
def test_adding_a_host_mount_adds_a_finding(p, mount, read_only):
    config = config_of(p)
    more = config_of(p)
    more["mounts"].append({"destination": "/extra" + mount[1], "type": "bind", "source": mount[0],
                           "options": ["rbind", "ro" if read_only else "rw"]})
    assert finding_count(more) > finding_count(config)


@SETTINGS
@given(params)
def test_every_finding_points_at_a_field_present_in_the_config(p):
    config = config_of(p)
    for finding in audit.audit(Subject("c", compiled(config), config, ""), profiles.load("restricted")).findings:
        assert existing_pointer(config, finding.pointer) == finding.pointer
        assert finding.pointer == "/" or resolve(config, finding.pointer) is not None


def resolve(config: dict, pointer: str) -> object:
    node: object = config
    for part in pointer.split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node
