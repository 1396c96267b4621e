"""`mrunc verify PLAN`: structure and invariants without running it. A plan edited by hand to skip a seccomp
load or a capability drop is caught, and so is a BPF that no longer says what its pseudo-filter text says."""

import base64
import json
import struct

import pytest
from hypothesis import given

from mrunc.compiler.compile import compile_bytes
from mrunc.review.verify import verify
from tests.conftest import mrunc
from tests.review_cases import CONFIGS, subject
from tests.test_lowering import compile_fragment
from tests.test_properties import BUNDLE, HOSTS, quick, valid_configs


@pytest.fixture
def compiled(bundle):
    """The hardened config (seccomp, capability drop, no_new_privs) compiled in a real bundle: (bundle, plan)."""
    bundle.write(json.loads(CONFIGS["hardened"].read_text()))
    path = bundle.path / "plan.json"
    assert mrunc("compile", str(bundle.config_path), "-o", str(path)).returncode == 0
    return bundle, path


def edit(path, change) -> None:
    plan = json.loads(path.read_text())
    change(plan)
    path.write_text(json.dumps(plan))


def without(*names: str):
    def change(plan: dict) -> None:
        plan["ops"] = [o for o in plan["ops"] if o["op"] not in names]

    return change


def test_a_compiled_plan_verifies_against_its_config_and_runs_with_its_filter(compiled):
    bundle, path = compiled
    result = mrunc("verify", str(path))
    assert result.returncode == 0, result.stdout
    assert "recompiled" in result.stdout and "same ops" in result.stdout
    config = json.loads(bundle.config_path.read_text())
    config["process"]["args"] = ["grep", "Seccomp:", "/proc/self/status"]
    bundle.write(config)
    assert mrunc("compile", str(bundle.config_path), "-o", str(path)).returncode == 0
    assert mrunc("verify", str(path)).returncode == 0
    ran = mrunc("exec", str(path))  # what verify vouched for really loads its filter
    assert ran.stdout.split() == ["Seccomp:", "2"], ran.stderr


def test_plan_edited_to_skip_the_seccomp_load_is_caught(compiled):
    _, path = compiled
    edit(path, without("seccomp_load"))
    result = mrunc("verify", str(path))
    assert result.returncode == 1
    assert "missing seccomp_load [init] (/linux/seccomp): the config asks for it" in result.stdout


def test_plan_edited_to_skip_the_capability_drop_is_caught(compiled):
    _, path = compiled
    edit(path, without("drop_bounding", "keep_caps", "capset"))
    result = mrunc("verify", str(path))
    assert result.returncode == 1
    for op in ("drop_bounding", "keep_caps", "capset"):
        assert f"missing {op} [init]" in result.stdout


def test_without_the_config_a_partial_capability_drop_is_still_caught():
    plan = subject("hardened").plan  # its bundle does not exist here
    without("drop_bounding")(plan)
    result = verify(plan)
    assert result.problems == ["/ops: keep_caps, capset without drop_bounding: the capability drop is incomplete"]
    assert "config not at hand" in result.notes[0]


@pytest.mark.parametrize("propagation", ["shared", "unbindable"])
def test_rootfs_propagation_after_pivot_root_is_no_mount_into_the_rootfs(propagation):
    plan = compile_fragment({"linux": {"rootfsPropagation": propagation}})
    root = next(i for i, o in enumerate(plan["ops"]) if o["op"] == "pivot_root")
    assert plan["ops"][root + 1]["src"] == "/linux/rootfsPropagation"
    assert verify(plan).problems == []
    plan["ops"][root + 1]["args"].update(source="/tmp", flags=["MS_BIND"])  # a real mount after pivot_root still is
    assert verify(plan).problems == [f"/ops/{root + 1}: mount into the rootfs after pivot_root (op {root})"]


def test_a_tmpfs_copyup_moved_after_pivot_root_breaks_the_order_rule():
    plan = compile_fragment({"mounts": [{"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                         "options": ["tmpcopyup"]}]})
    assert verify(plan).problems == []
    ops = plan["ops"]
    copyup = ops.pop(next(i for i, o in enumerate(ops) if o["op"] == "tmpfs_copyup"))
    root = next(i for i, o in enumerate(ops) if o["op"] == "pivot_root")
    ops.insert(root + 1, copyup)
    assert f"/ops/{root + 1}: tmpfs_copyup into the rootfs after pivot_root (op {root})" in verify(plan).problems


def test_seccomp_loaded_before_no_new_privs_breaks_the_order_rule():
    plan = subject("hardened").plan
    ops = plan["ops"]
    load = next(i for i, o in enumerate(ops) if o["op"] == "seccomp_load")
    ops.insert(next(i for i, o in enumerate(ops) if o["op"] == "set_ids"), ops.pop(load))
    assert any("seccomp_load before no_new_privs" in p for p in verify(plan).problems)


def test_a_plan_without_check_program_or_checking_after_the_id_change_is_caught():
    plan = subject("hardened").plan
    without("check_program")(plan)
    assert "/ops: check_program appears 0 times; a plan has it once" in verify(plan).problems
    plan = subject("hardened").plan
    ops = plan["ops"]
    check = ops.pop(next(i for i, o in enumerate(ops) if o["op"] == "check_program"))
    ops.insert(next(i for i, o in enumerate(ops) if o["op"] == "set_ids") + 1, check)
    (problem,) = verify(plan).problems
    assert "drop_bounding comes after check_program" in problem and "the order is check_program -> " in problem


def flip_first_return(plan: dict, to: int) -> None:
    op = next(o for o in plan["ops"] if o["op"] == "seccomp_load")
    raw = bytearray(base64.b64decode(op["args"]["bpf"]))
    at = next(off for off in range(0, len(raw), 8) if struct.unpack_from("<H", raw, off)[0] == 0x06)
    struct.pack_into("<I", raw, at + 4, to)
    op["args"]["bpf"] = base64.b64encode(bytes(raw)).decode()


def test_bpf_edited_to_allow_a_denied_syscall_is_caught():
    plan = subject("hardened").plan
    flip_first_return(plan, 0x7FFF0000)  # the first return is an ERRNO rule: make it ALLOW
    problems = verify(plan).problems
    assert problems and all(p.startswith("/ops/") and "/args/bpf: " in p for p in problems)
    assert any("the pfc says ERRNO" in p for p in problems), problems


def test_pfc_edited_to_hide_a_rule_is_caught():
    plan = subject("hardened").plan
    op = next(o for o in plan["ops"] if o["op"] == "seccomp_load")
    op["args"]["pfc"] = op["args"]["pfc"].replace("action ERRNO(97);", "action ALLOW;")
    assert any("the BPF returns 0x50061, the pfc says ALLOW" in p for p in verify(plan).problems)


@pytest.mark.parametrize(("bpf", "problem"), [
    (base64.b64encode(b"\x06\x00\x00\x00\x00\x00\xff").decode(), "7 bytes is not a whole number of 8-byte"),
    (base64.b64encode(struct.pack("<HBBI", 0x20, 0, 0, 64)).decode(), "outside struct seccomp_data"),
    (base64.b64encode(struct.pack("<HBBI", 0x15, 5, 0, 0) + struct.pack("<HBBI", 6, 0, 0, 0)).decode(),
     "jumps past the end"),
    ("not base64!", "not base64"),
])
def test_bpf_that_does_not_decode_is_caught(bpf, problem):
    plan = subject("hardened").plan
    next(o for o in plan["ops"] if o["op"] == "seccomp_load")["args"]["bpf"] = bpf
    assert any(problem in p for p in verify(plan).problems), verify(plan).problems


def test_execve_not_last_is_a_structure_error_and_unreadable_plans_exit_2(tmp_path):
    plan = subject("hardened").plan
    plan["ops"].append(plan["ops"].pop(-2))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    result = mrunc("verify", str(path))
    assert result.returncode == 1 and "end with execve" in result.stdout
    path.write_text("{")
    assert mrunc("verify", str(path)).returncode == 2
    assert mrunc("verify", str(tmp_path / "missing.json")).returncode == 2


def test_stale_plan_is_a_problem(compiled):
    bundle, path = compiled
    bundle.config_path.write_text(bundle.config_path.read_text() + " ")
    result = mrunc("verify", str(path))
    assert result.returncode == 1 and "/config_sha256: " in result.stdout and "changed since" in result.stdout


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_golden_config_compiles_to_a_plan_that_verifies(name):
    assert verify(subject(name).plan).problems == []


def test_arguments_of_the_wrong_type_are_named_by_pointer(tmp_path):
    plan = subject("hardened").plan
    unshare = next(i for i, o in enumerate(plan["ops"]) if o["op"] == "unshare")
    plan["ops"][unshare]["args"]["flags"] = ["CLONE_NEWPID", "CLONE_NEWFOO"]
    plan["ops"][-1]["args"]["args"] = "sh"
    # The executor's own check (executor/argtypes.py), which verify runs first: the first wrong argument.
    assert verify(plan).problems == [f"/ops/{unshare}/args/flags: item 1: 'CLONE_NEWFOO' is not a known clone flag"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    for command in (["audit", str(path)], ["diff", str(path), str(path)]):
        result = mrunc(*command)
        assert result.returncode == 2 and f"/ops/{unshare}/args/flags: item 1: 'CLONE_NEWFOO'" in result.stderr
        assert "Traceback" not in result.stderr


def test_verify_of_a_config_compiles_it_first_and_verifies_that_plan(bundle):
    bundle.write(json.loads(CONFIGS["hardened"].read_text()))
    result = mrunc("verify", str(bundle.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unknown plan format" not in result.stdout + result.stderr
    assert "recompiled" in result.stdout and "same ops" in result.stdout
    config = json.loads(bundle.config_path.read_text())
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]
    bundle.config_path.write_text(json.dumps(config))
    refused = mrunc("verify", str(bundle.config_path))
    assert refused.returncode == 2 and "/process/rlimits/0/type" in refused.stderr, refused.stderr


@quick
@given(valid_configs(), HOSTS)
def test_verify_is_clean_for_every_plan_compiled_from_a_valid_config(config, host):
    """Issue 14: verify recompiles the approved config for the plan's host and finds every op as compiled, the
    structure and order rules held, the filter's syscalls allowed, and nothing the config asks for skipped."""
    raw = json.dumps(config).encode()
    plan = compile_bytes(raw, BUNDLE, "prop", host)
    result = verify(plan, raw)
    assert result.problems == [], result.problems
    assert any(note.endswith("same ops") for note in result.notes), result.notes
