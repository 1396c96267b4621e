"""linux.memoryPolicy: one set_mempolicy(2) op on init, checked at compile time as the kernel and runc 1.3 check it
and against the host's NUMA nodes; real containers read their policy back from /proc/self/numa_maps (the policy of
each mapping, the task's where the mapping has none) and /proc/self/status."""

import json
from pathlib import Path

import pytest

from mrunc.compiler.errors import ConfigError, ConfigErrors
from mrunc.compiler.lower_procattrs import host_numa_nodes
from tests.conftest import base_config, run_config
from tests.test_lowering import compile_fragment, ops

NODES = host_numa_nodes()
needs_numa = pytest.mark.skipif(not NODES, reason="no NUMA node on this host (/sys/devices/system/node/online)")
SHOW = ["sh", "-c", "grep -m1 ' heap ' /proc/self/numa_maps; grep Mems_allowed_list /proc/self/status"]


def policy_config(policy: dict) -> dict:
    config = base_config(SHOW)
    config["linux"]["memoryPolicy"] = policy
    return config


@needs_numa
@pytest.mark.parametrize("policy, shown", [
    ({"mode": "MPOL_BIND", "nodes": "{node}"}, "bind:{node}"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "{node}"}, "interleave:{node}"),
    ({"mode": "MPOL_PREFERRED", "nodes": "{node}"}, "prefer:{node}"),
    ({"mode": "MPOL_PREFERRED"}, "local"),  # no node: the local one
    ({"mode": "MPOL_LOCAL"}, "local"),
    ({"mode": "MPOL_DEFAULT"}, "default"),
    ({"mode": "MPOL_BIND", "nodes": "{node}", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:{node}"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}, "interleave=relative:{node}"),
])
def test_memory_policy_is_the_containers_own(bundle, policy, shown):
    node = str(NODES[0])
    policy = json.loads(json.dumps(policy).replace("{node}", node))
    result = run_config(bundle, policy_config(policy))
    assert result.returncode == 0, result.stderr
    heap, mems = result.stdout.splitlines()
    assert heap.split()[1] == shown.replace("{node}", node), heap
    assert node in mems.split()[1].split(","), mems  # the node is one the container may allocate from


def test_memory_policy_lowers_to_one_init_op_before_seccomp_and_the_capability_drop():
    plan = compile_fragment({"linux": {"memoryPolicy": {"mode": "MPOL_PREFERRED"}}})
    assert ops(plan, "/linux/memoryPolicy") == [
        ("set_mempolicy", "init", "/linux/memoryPolicy", {"mode": "MPOL_PREFERRED", "nodes": [], "flags": []})]
    names = [o["op"] for o in plan["ops"]]
    assert names.index("set_mempolicy") < names.index("set_ids") < names.index("execve")


@pytest.mark.parametrize("policy, pointer, words", [
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "/linux/memoryPolicy/nodes", "allowed: no nodes"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "/linux/memoryPolicy/nodes", "allowed: no nodes"),
    ({"mode": "MPOL_BIND"}, "/linux/memoryPolicy/nodes", "missing with MPOL_BIND"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": ""}, "/linux/memoryPolicy/nodes", "missing with MPOL_INTERLEAVE"),
    ({"mode": "MPOL_BIND", "nodes": "2-1"}, "/linux/memoryPolicy/nodes", "a NUMA node list"),
    ({"mode": "MPOL_BIND", "nodes": "a"}, "/linux/memoryPolicy/nodes", "a NUMA node list"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "/linux/memoryPolicy/flags", "together"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}, "/linux/memoryPolicy/flags",
     "allowed with MPOL_BIND or MPOL_PREFERRED_MANY"),
    ({"mode": "MPOL_DEFAULT", "flags": ["MPOL_F_STATIC_NODES"]}, "/linux/memoryPolicy/flags", "no flags"),
    ({"mode": "MPOL_NOPE"}, "/linux/memoryPolicy/mode", "MPOL_BIND"),
    ({"nodes": "0"}, "/linux/memoryPolicy", "mode"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}, "/linux/memoryPolicy/flags/0",
     "MPOL_F_STATIC_NODES"),
])
def test_bad_memory_policy_is_refused_naming_the_field(policy, pointer, words):
    with pytest.raises((ConfigError, ConfigErrors)) as refused:
        compile_fragment({"linux": {"memoryPolicy": policy}})
    assert f"{pointer}: " in str(refused.value) and words in str(refused.value), str(refused.value)


@needs_numa
def test_a_node_the_host_lacks_is_refused_at_compile_time_naming_the_hosts_nodes(bundle):
    missing = max(NODES) + 1
    result = run_config(bundle, policy_config({"mode": "MPOL_BIND", "nodes": str(missing)}))
    assert result.returncode == 1
    assert f"/linux/memoryPolicy/nodes: got '{missing}': node {missing} is not online on this host" in result.stderr
    assert not (bundle.state_root / bundle.id).exists()


@needs_numa
def test_static_nodes_may_name_nodes_the_host_lacks_as_the_kernel_allows(bundle):
    policy = {"mode": "MPOL_PREFERRED", "nodes": f"{NODES[0]},{max(NODES) + 1}", "flags": ["MPOL_F_STATIC_NODES"]}
    result = run_config(bundle, policy_config(policy))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1].startswith("prefer=static:"), result.stdout


@pytest.mark.skipif(Path("/sys/devices/system/node").exists(), reason="this kernel has NUMA: it applies the policy")
def test_without_numa_the_container_fails_at_set_mempolicy_as_runc(bundle):
    """A kernel without CONFIG_NUMA has no set_mempolicy: the container fails there (ENOSYS), as runc 1.3's init
    does, and leaves nothing behind; the plan says so beforehand."""
    config = policy_config({"mode": "MPOL_LOCAL"})
    result = run_config(bundle, config)
    assert result.returncode == 1
    assert "set_mempolicy (/linux/memoryPolicy)" in result.stderr and "ENOSYS" in result.stderr, result.stderr
    plan = compile_fragment({"linux": {"memoryPolicy": {"mode": "MPOL_LOCAL"}}})
    assert any("/linux/memoryPolicy: this host's kernel has no NUMA" in n for n in plan["notes"])
