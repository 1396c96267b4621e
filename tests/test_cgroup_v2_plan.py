"""cgroup v2 plans, on any host: compiled with explicit host fingerprints (the guest runs them for real)."""

import base64
import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrunc.compiler import lower_devices_bpf as bpf
from mrunc.compiler.compile import compile_bytes
from mrunc.compiler.errors import ConfigError
from tests.conftest import base_config

V1 = {"arch": "x86_64", "cgroup": "v1",
      "controllers": ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]}
V2 = {"arch": "x86_64", "cgroup": "v2", "controllers": ["cpu", "io", "memory", "pids"]}
CGROUP_OPS = {"cgroup_mkdir", "cgroup_copy_parent", "cgroup_write", "cgroup_enter", "cgroup_device_filter"}


def compile_for(config: dict, host: dict, tmp_path) -> dict:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    config = copy.deepcopy(config)
    config["root"]["path"] = "rootfs"
    return compile_bytes(json.dumps(config).encode(), str(tmp_path), "c1", host)


def limited_config() -> dict:
    config = base_config(["sh"])
    config["linux"]["resources"].update(memory={"limit": 1 << 26, "swap": 1 << 27}, pids={"limit": 16},
                                        cpu={"shares": 512, "quota": 20000, "period": 100000})
    return config


def split_cgroup_ops(plan: dict) -> tuple[list[dict], list[dict]]:
    """(cgroup ops, the rest); the mount of /sys/fs/cgroup counts as a cgroup op."""
    config = base_config(["sh"])
    mount_src = {f"/mounts/{i}" for i, m in enumerate(config["mounts"]) if m["type"] in ("cgroup", "cgroup2")}
    cgroup = [o for o in plan["ops"] if o["op"] in CGROUP_OPS or o["src"] in mount_src]
    return cgroup, [o for o in plan["ops"] if o not in cgroup]


def test_v1_and_v2_plans_of_one_config_differ_only_in_cgroup_ops(tmp_path):
    v1_cgroup, v1_rest = split_cgroup_ops(compile_for(limited_config(), V1, tmp_path))
    v2_cgroup, v2_rest = split_cgroup_ops(compile_for(limited_config(), V2, tmp_path))
    assert v1_rest == v2_rest
    v1_files = [o["args"]["file"] for o in v1_cgroup if o["op"] == "cgroup_write"]
    v2_files = [o["args"]["file"] for o in v2_cgroup if o["op"] == "cgroup_write"]
    assert "memory.limit_in_bytes" in v1_files and "devices.deny" in v1_files
    assert v2_files == ["cgroup.subtree_control"] * 2 + ["memory.max", "memory.swap.max", "pids.max",
                                                         "cpu.weight", "cpu.max"]
    assert [o["op"] for o in v2_cgroup].count("cgroup_device_filter") == 1
    v2_mounts = [o for o in v2_cgroup if o["op"] in ("mount", "remount")]
    assert v2_mounts and v2_mounts[0]["args"]["source"].startswith("/sys/fs/cgroup/mrunc/c1")


def test_v2_values_are_converted_as_runc_converts_them(tmp_path):
    plan = compile_for(limited_config(), V2, tmp_path)
    values = {o["args"]["file"]: o["args"]["value"] for o in plan["ops"] if o["op"] == "cgroup_write"}
    assert values["memory.swap.max"] == str((1 << 27) - (1 << 26))  # OCI swap is memory+swap
    assert values["cpu.weight"] == str(1 + (512 - 2) * 9999 // 262142)
    assert values["cpu.max"] == "20000 100000"
    assert values["cgroup.subtree_control"] == "+cpu +io +memory +pids"


def test_zero_memory_values_leave_v2_files_alone_and_minus_one_means_max(tmp_path):
    config = base_config(["sh"])
    config["linux"]["resources"]["memory"] = {"limit": -1, "reservation": 0}
    plan = compile_for(config, V2, tmp_path)
    values = {o["args"]["file"]: o["args"]["value"] for o in plan["ops"] if o["op"] == "cgroup_write"}
    assert values["memory.max"] == "max" and values["memory.swap.max"] == "max"
    assert "memory.low" not in values  # memory.low=max would protect all of it from reclaim


def test_a_cgroup_namespace_gets_a_cgroup2_mount(tmp_path):
    config = base_config(["sh"])
    config["linux"]["namespaces"].append({"type": "cgroup"})
    cgroup_ops, _ = split_cgroup_ops(compile_for(config, V2, tmp_path))
    mounts = [o["args"] for o in cgroup_ops if o["op"] == "mount"]
    assert [(m["fstype"], m["target"]) for m in mounts] == [("cgroup2", "/sys/fs/cgroup")]
    assert "MS_RDONLY" in mounts[0]["flags"]


def test_fields_v2_has_no_file_for_are_noted_not_dropped_silently(tmp_path):
    config = base_config(["sh"])
    config["linux"]["resources"].update(memory={"swappiness": 10}, cpu={"realtimeRuntime": 1000})
    notes = compile_for(config, V2, tmp_path)["notes"]
    for field in ("memory/swappiness", "cpu/realtimeRuntime"):
        assert f"/linux/resources/{field}: cgroup v2 has no file for this; not applied" in notes


@pytest.mark.parametrize("key, problem", [
    ("memory/../cpu.max", "no '/'"), ("memoryhigh", "control file name"), ("hugetlb.2MB.max", "not available"),
    ("cgroup.procs", "allowed cgroup.* files"), ("memory.high", "newline")])
def test_bad_unified_keys_are_refused_naming_the_key(tmp_path, key, problem):
    config = base_config(["sh"])
    config["linux"]["resources"]["unified"] = {key: "1\n2" if problem == "newline" else "1"}
    with pytest.raises(ConfigError) as error:
        compile_for(config, V2, tmp_path)
    assert error.value.pointer == "/linux/resources/unified/" + key.replace("/", "~1")
    assert problem in error.value.problem


@pytest.mark.parametrize("memory", [{"swap": 1 << 20}, {"limit": 1 << 21, "swap": 1 << 20}])
def test_swap_without_a_larger_memory_limit_is_refused_on_v2(tmp_path, memory):
    config = base_config(["sh"])
    config["linux"]["resources"]["memory"] = memory
    with pytest.raises(ConfigError) as error:
        compile_for(config, V2, tmp_path)
    assert error.value.pointer == "/linux/resources/memory/swap"


def device_filter(plan: dict) -> dict:
    return next(o["args"] for o in plan["ops"] if o["op"] == "cgroup_device_filter")


def test_device_listing_and_rule_table_match_the_program(tmp_path):
    config = base_config(["sh"])
    config["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 1, "minor": 11,
                                                    "access": "r"})
    args = device_filter(compile_for(config, V2, tmp_path))
    code = base64.b64decode(args["bpf"])
    assert args["listing"] == bpf.disassemble(code)
    assert len(args["listing"]) == len(code) // 8
    # Checked last listed first: runc's default rules (appended after the config's), then the config's.
    assert args["rules"][0] == "allow c 10:200 rwm  # /linux/resources/devices"
    assert args["rules"][-2:] == ["allow c 1:11 r  # /linux/resources/devices/1",
                                  "deny a  # /linux/resources/devices/0"]
    assert args["listing"][-2:] == [f"{len(code) // 8 - 2:3}: r0 = 0", f"{len(code) // 8 - 1:3}: exit"]


def run_program(code: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """A small interpreter of the opcodes the assembler uses, to check what the bytes decide."""
    ctx = ((sum(bpf.ACCESS[a] for a in access) << 16) | bpf.TYPES[kind], major, minor)
    regs, pc, program = [0] * 11, 0, bpf.decode(code)
    while True:
        op, dst, src, off, imm = program[pc]
        pc += 1
        if op == bpf.LDX_W:
            regs[dst] = ctx[off // 4]
        elif op in (bpf.MOV_X, bpf.MOV_K):
            regs[dst] = regs[src] if op == bpf.MOV_X else imm
        elif op == bpf.AND_K:
            regs[dst] &= imm
        elif op == bpf.RSH_K:
            regs[dst] >>= imm
        elif op in (bpf.JNE_K, bpf.JEQ_K):
            pc += off if (regs[dst] != imm) == (op == bpf.JNE_K) else 0
        elif op == bpf.EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unknown opcode {op:#x}")


def reference_decision(rules: list[bpf.Rule], kind: str, major: int, minor: int, access: str) -> int:
    """The last listed rule that matches decides; none matching denies."""
    for allow, rkind, rmajor, rminor, raccess, _ in reversed(rules):
        if rkind not in ("a", kind) or rmajor not in (None, major) or rminor not in (None, minor):
            continue
        if (allow and set(access) <= set(raccess)) or (not allow and set(access) & set(raccess)):
            return int(allow)
    return 0


def test_program_decides_as_listed_rules_say(tmp_path):
    config = base_config(["sh"])
    config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"},
        {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"}]
    code = base64.b64decode(device_filter(compile_for(config, V2, tmp_path))["bpf"])
    decisions = {(k, ma, mi, a): run_program(code, k, ma, mi, a) for k, ma, mi, a in [
        ("c", 1, 11, "r"), ("c", 1, 11, "w"), ("c", 1, 11, "rw"), ("c", 1, 3, "rw"), ("b", 8, 0, "r"),
        ("b", 8, 0, "m"), ("c", 1, 12, "r"), ("c", 136, 4, "rw")]}
    assert decisions == {("c", 1, 11, "r"): 1, ("c", 1, 11, "w"): 0, ("c", 1, 11, "rw"): 0, ("c", 1, 3, "rw"): 1,
                         ("b", 8, 0, "r"): 0, ("b", 8, 0, "m"): 1, ("c", 1, 12, "r"): 0, ("c", 136, 4, "rw"): 1}


numbers = st.one_of(st.none(), st.integers(0, 3))
rules_strategy = st.lists(st.tuples(st.booleans(), st.sampled_from("abc"), numbers, numbers,
                                    st.sampled_from(["r", "w", "m", "rw", "rwm", "wm"]), st.just("/x")),
                          max_size=6)


@given(rules=rules_strategy, kind=st.sampled_from("bc"), major=st.integers(0, 3), minor=st.integers(0, 3),
       access=st.sampled_from(["r", "w", "m", "rw", "rwm"]))
def test_assembled_program_agrees_with_the_rules_for_any_rules_and_device(rules, kind, major, minor, access):
    rules = [(a, k, None if k == "a" else ma, None if k == "a" else mi, acc, s) for a, k, ma, mi, acc, s in rules]
    code = bpf.encode(bpf.assemble(bpf.check_order(rules)))
    assert run_program(code, kind, major, minor, access) == reference_decision(rules, kind, major, minor, access)
