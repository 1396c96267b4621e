"""cgroup v2 plans, on any host: compiled with explicit host fingerprints (the guest runs them for real)."""

import base64
import copy
import json
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrunc.compiler import device_rules
from mrunc.compiler import lower_devices_bpf as bpf
from mrunc.compiler.compile import compile_bytes
from mrunc.compiler.errors import ConfigError
from tests.conftest import TEST_CGROUP_PARENT, base_config, mrunc

V1 = {"arch": "x86_64", "cgroup": "v1",
      "controllers": ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]}
V2 = {"arch": "x86_64", "cgroup": "v2", "controllers": ["cpu", "io", "memory", "pids"]}
CGROUP_OPS = {"cgroup_mkdir", "cgroup_copy_parent", "cgroup_write", "cgroup_open_tasks", "cgroup_join_self",
              "cgroup_attach", "cgroup_joined", "cgroup_device_filter"}


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


def test_device_rule_table_is_v1s_merged_state_and_the_listing_matches_the_program(tmp_path):
    config = base_config(["sh"])
    config["linux"]["resources"]["devices"] += [{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"},
                                                {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]
    args = device_filter(compile_for(config, V2, tmp_path))
    code = base64.b64decode(args["bpf"])
    assert args["listing"] == bpf.disassemble(code)
    assert len(args["listing"]) == len(code) // 8
    d = "/linux/resources/devices"
    assert args["rules"] == [
        f"allow c 1:11 rw  # {d}/1, {d}/2", f"allow c *:* m  # {d}", f"allow b *:* m  # {d}",
        f"allow c 1:3 rwm  # {d}", f"allow c 1:5 rwm  # {d}", f"allow c 1:7 rwm  # {d}", f"allow c 5:0 rwm  # {d}",
        f"allow c 1:9 rwm  # {d}", f"allow c 1:8 rwm  # {d}", f"allow c 136:* rwm  # {d}", f"allow c 5:2 rwm  # {d}",
        f"allow c 10:200 rwm  # {d}", f"deny a  # {d}/0"]


def test_two_allow_rules_for_one_device_merge_into_one_read_write_check():
    rules = [(False, "a", None, None, "rwm", "/0"), (True, "c", 1, 11, "r", "/1"), (True, "c", 1, 11, "w", "/2")]
    state = device_rules.emulate(rules)
    assert state.lines() == ["allow c 1:11 rw  # /1, /2", "deny a  # /0"]
    assert bpf.disassemble(bpf.encode(bpf.assemble(state))) == [
        "  0: r2 = *(u32 *)(r1 + 0)", "  1: r3 = r2", "  2: r2 &= 0xffff", "  3: r3 >>= 16",
        "  4: r4 = *(u32 *)(r1 + 4)", "  5: r5 = *(u32 *)(r1 + 8)",
        "  6: if r2 != 2 goto 14", "  7: r6 = r3", "  8: r6 &= 0x1", "  9: if r6 != 0 goto 14",
        " 10: if r4 != 1 goto 14", " 11: if r5 != 11 goto 14", " 12: r0 = 1", " 13: exit",
        " 14: r0 = 0", " 15: exit"]


def test_a_deny_takes_bits_from_the_same_device_and_a_later_reset_forgets_everything():
    state = device_rules.emulate([(False, "a", None, None, "rwm", "/0"), (True, "c", 1, 11, "rwm", "/1"),
                                  (False, "c", 1, 11, "w", "/2"), (False, "b", 8, None, "r", "/3")])
    assert state.lines() == ["allow c 1:11 rm  # /1, /2", "deny a  # /0"]
    state = device_rules.emulate([(False, "c", 1, 3, "w", "/0"), (False, "c", 1, 3, "r", "/1"),
                                  (True, "a", None, None, "r", "/2"), (False, "b", None, None, "m", "/3")])
    assert state.lines() == ["deny b *:* m  # /3", "allow a  # /2"]


def test_a_rule_v1_would_ignore_under_a_wider_one_is_refused_naming_it(tmp_path):
    config = base_config(["sh"])
    config["linux"]["resources"]["devices"] += [{"allow": True, "type": "c", "access": "rw"},
                                                {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "w"}]
    for host in (V1, V2):
        with pytest.raises(ConfigError) as error:
            compile_for(config, host, tmp_path)
        assert error.value.pointer == "/linux/resources/devices/2"
        assert "'allow c *:* rw' (/linux/resources/devices/1)" in error.value.problem
    (tmp_path / "config.json").write_text(json.dumps({**config, "root": {"path": "rootfs"}}))
    result = mrunc("compile", str(tmp_path / "config.json"), private_mounts=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "/linux/resources/devices/2: cannot undo w for c 1:11 under the wider 'allow c *:* rw'" in result.stderr


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


def v1_decision(rules: list[device_rules.Rule], kind: str, major: int, minor: int, access: str) -> int:
    """The v1 controller's answer, said another way: after the last 'a' rule (the default's), an access bit of a
    (type, major, minor) is an exception if the last rule naming exactly that device and bit had the other
    verdict. A deny default allows if one exception holds every requested bit; an allow default denies if any
    exception holds any of them."""
    last_reset = max((i for i, r in enumerate(rules) if r[1] == "a"), default=-1)
    default = rules[last_reset][0] if last_reset >= 0 else True
    held: dict[tuple, set[str]] = {}
    for allow, rkind, rmajor, rminor, raccess, _ in rules[last_reset + 1:]:
        bits = held.setdefault((rkind, rmajor, rminor), set())
        bits.update(raccess) if allow != default else bits.difference_update(raccess)
    matching = [bits for (rkind, rmajor, rminor), bits in held.items()
                if rkind == kind and rmajor in (None, major) and rminor in (None, minor)]
    if default:
        return int(not any(set(access) & bits for bits in matching))
    return int(any(set(access) <= bits for bits in matching))


def test_program_of_a_config_decides_as_v1(tmp_path):
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
def test_assembled_program_decides_as_v1_for_any_rules_and_device(rules, kind, major, minor, access):
    rules = [(a, k, None if k == "a" else ma, None if k == "a" else mi, acc, s) for a, k, ma, mi, acc, s in rules]
    try:
        state = device_rules.emulate(rules)
    except ConfigError:
        return  # v1 would ignore a rule here; mrunc refuses the config (tested above)
    code = bpf.encode(bpf.assemble(state))
    assert run_program(code, kind, major, minor, access) == v1_decision(rules, kind, major, minor, access)


V1_DEVICES = Path("/sys/fs/cgroup/devices")
exception_rules = st.lists(st.tuples(st.booleans(), st.sampled_from("bc"), numbers, numbers,
                                     st.sampled_from(["r", "w", "m", "rw", "rwm", "wm"]), st.just("/x")),
                           max_size=6)


@pytest.mark.skipif(not V1_DEVICES.is_dir(), reason="needs the v1 devices controller (this host; not the v2 guest)")
@settings(max_examples=25, deadline=None)
@given(rules=exception_rules)
def test_merged_rules_are_what_the_v1_kernel_lists_after_the_same_writes(rules):
    rules = [(False, "a", None, None, "rwm", "/0"), *rules]
    try:
        state = device_rules.emulate(rules)
    except ConfigError:
        return  # v1 would ignore a rule here; mrunc refuses the config
    cgroup = V1_DEVICES / f"{TEST_CGROUP_PARENT}-merge-{uuid.uuid4().hex[:8]}"
    cgroup.mkdir()
    try:
        for allow, kind, major, minor, access, _ in rules:
            star = lambda n: "*" if n is None else str(n)  # noqa: E731
            text = "a" if kind == "a" else f"{kind} {star(major)}:{star(minor)} {access}"
            (cgroup / ("devices.allow" if allow else "devices.deny")).write_text(text)
        listed = (cgroup / "devices.list").read_text().splitlines()
    finally:
        cgroup.rmdir()
    assert listed == [line.split("  # ")[0].removeprefix("allow ") for line in state.lines()[:-1]]


def test_v2_io_hugetlb_and_rdma_lowering_is_exact(tmp_path):
    config = base_config(["sh"])
    disk = {"major": 8, "minor": 0}
    config["linux"]["resources"].update(
        blockIO={"weight": 500, "leafWeight": 300, "weightDevice": [{**disk, "weight": 200, "leafWeight": 100}],
                 **{key: [{**disk, "rate": rate}] for key, rate in (
                     ("throttleReadBpsDevice", 1 << 20), ("throttleWriteBpsDevice", 1 << 19),
                     ("throttleReadIOPSDevice", 100), ("throttleWriteIOPSDevice", 50))}},
        hugepageLimits=[{"pageSize": "2MB", "limit": 1 << 30}, {"pageSize": "1GB", "limit": 0}],
        rdma={"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}})
    plan = compile_for(config, {**V2, "controllers": ["cpu", "hugetlb", "io", "memory", "pids", "rdma"]}, tmp_path)
    writes = [(o["args"].get("file") or o["args"]["files"], o["args"].get("value") or o["args"]["values"], o["src"])
              for o in plan["ops"] if o["op"] in ("cgroup_write", "cgroup_write_first")]
    r = "/linux/resources"
    assert writes[2:] == [
        (["io.bfq.weight", "io.weight"], ["500", "4950"], f"{r}/blockIO/weight"),
        (["io.bfq.weight", "io.weight"], ["8:0 200", "8:0 1920"], f"{r}/blockIO/weightDevice/0"),
        ("io.max", "8:0 rbps=1048576", f"{r}/blockIO/throttleReadBpsDevice/0"),
        ("io.max", "8:0 wbps=524288", f"{r}/blockIO/throttleWriteBpsDevice/0"),
        ("io.max", "8:0 riops=100", f"{r}/blockIO/throttleReadIOPSDevice/0"),
        ("io.max", "8:0 wiops=50", f"{r}/blockIO/throttleWriteIOPSDevice/0"),
        ("hugetlb.2MB.max", str(1 << 30), f"{r}/hugepageLimits/0"),
        ("hugetlb.1GB.max", "0", f"{r}/hugepageLimits/1"),
        ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000", f"{r}/rdma/mlx5_1")]
    no_file = "cgroup v2 has no file for this; not applied"
    assert [n for n in plan["notes"] if n.startswith(r)] == [f"{r}/blockIO/weightDevice/0/leafWeight: {no_file}",
                                                             f"{r}/blockIO/leafWeight: {no_file}"]
