"""The plan as a contract, through `mrunc exec`: a plan edited after compiling is refused with the reason before
anything is made (a type, a missing bundle, a security op the config asks for), a reviewed plan is pinned by its
digest (`compile -o` prints it, `exec --expect` refuses any other plan, --force or not), and `verify` fails
whenever a security-relevant op is removed from any golden plan."""

import hashlib
import json

import pytest

from mrunc.review.verify import SECURITY_OPS, verify
from mrunc.tools.regen_plans import GOLDENS, PLANS
from tests.conftest import base_config, mrunc


def compile_to(bundle, config: dict) -> tuple[str, str]:
    """The plan's path and the digest `compile -o` printed for it."""
    plan_path = str(bundle.path / "plan.json")
    result = mrunc("compile", str(bundle.write(config)), "-o", plan_path)
    assert result.returncode == 0, result.stderr
    digest, printed_path = result.stdout.split()
    assert printed_path == plan_path
    return plan_path, digest


def hardened(args: list[str]) -> dict:
    config = base_config(args)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]}
    return config


def edit(plan_path: str, change) -> None:
    with open(plan_path) as f:
        plan = json.load(f)
    change(plan)
    with open(plan_path, "w") as f:
        json.dump(plan, f)


def refused(plan_path: str, *extra: str) -> str:
    result = mrunc("exec", *extra, plan_path)
    assert (result.returncode, result.stdout) == (1, ""), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_compile_prints_the_digest_of_the_plan_it_wrote(bundle):
    plan_path, digest = compile_to(bundle, base_config(["true"]))
    with open(plan_path, "rb") as f:
        assert digest == "sha256:" + hashlib.sha256(f.read()).hexdigest()


def test_expect_runs_the_pinned_plan_and_refuses_any_other_even_with_force(bundle):
    plan_path, digest = compile_to(bundle, base_config(["echo", "pinned"]))
    ran = mrunc("exec", plan_path, "--expect", digest)
    assert (ran.returncode, ran.stdout) == (0, "pinned\n"), ran.stderr
    edit(plan_path, lambda plan: plan["notes"].append("/: edited"))
    message = refused(plan_path, "--force", f"--expect={digest}")
    assert f"not the expected {digest}: refusing to run a plan other than the one pinned" in message
    bad = mrunc("exec", plan_path, "--expect", "sha256:abc")
    assert bad.returncode == 2 and "--expect: got 'sha256:abc'" in bad.stderr


def test_a_plan_without_its_seccomp_load_is_refused_naming_the_config_field(bundle):
    plan_path, _ = compile_to(bundle, hardened(["true"]))
    edit(plan_path, lambda plan: plan.update(ops=[o for o in plan["ops"] if o["op"] != "seccomp_load"]))
    message = refused(plan_path)
    assert "/linux/seccomp: the config loads a seccomp filter; the plan has no seccomp_load" in message
    assert "the plan was edited since it was compiled" in message


@pytest.mark.parametrize(("change", "reason"), [
    (lambda o: o["op"] == "set_ids" and o["args"].update(uid=0, gid=0),
     "/process/user: the config runs the process as {'uid': 1000"),
    (lambda o: o["op"] == "execve" and o["args"].update(args=["sh", "-c", "id"]),
     "/process/args: the plan's execve does not run the config's process.args"),
], ids=["as-root", "another-program"])
def test_a_plan_running_as_another_user_or_program_is_refused(bundle, change, reason):
    plan_path, _ = compile_to(bundle, hardened(["true"]))
    edit(plan_path, lambda plan: [change(o) for o in plan["ops"]])
    assert reason in refused(plan_path)


def test_a_wrongly_typed_argument_is_refused_before_anything_runs(bundle):
    plan_path, _ = compile_to(bundle, base_config(["true"]))
    edit(plan_path, lambda plan: next(o for o in plan["ops"] if o["op"] == "mknod")["args"].update(major="x"))
    assert "/args/major: expected an integer, got 'x'" in refused(plan_path)


def test_a_plan_without_a_bundle_and_with_a_junk_digest_is_refused(bundle):
    plan_path, _ = compile_to(bundle, base_config(["true"]))
    edit(plan_path, lambda plan: (plan.pop("bundle"), plan.update(config_sha256="junk")))
    assert "/bundle: missing: the plan names no bundle" in refused(plan_path)


def test_a_plan_of_another_format_is_refused(bundle):
    plan_path, _ = compile_to(bundle, base_config(["true"]))
    edit(plan_path, lambda plan: plan.update(format="mrunc-plan/2"))
    assert "/format: unknown plan format 'mrunc-plan/2'" in refused(plan_path)


CASES = [(g, i) for g in GOLDENS for i, o in enumerate(json.loads((PLANS / f"{g.name}.json").read_text())["ops"])
         if o["op"] in SECURITY_OPS]


@pytest.mark.parametrize(("golden", "index"), CASES, ids=[f"{g.name}-{i}" for g, i in CASES])
def test_verify_fails_when_any_security_op_of_a_golden_plan_is_removed(golden, index):
    plan = json.loads((PLANS / f"{golden.name}.json").read_text())
    config = golden.config.read_bytes()  # the reviewed config: verify recompiles it and compares
    assert verify(plan, config).problems == []
    removed = plan["ops"][index]
    plan["ops"] = plan["ops"][:index] + plan["ops"][index + 1:]
    assert verify(plan, config).problems, f"removing {removed['op']} (op {index}) went unnoticed"


def test_verify_with_the_reviewed_config_names_a_removed_op(tmp_path):
    golden = next(g for g in GOLDENS if g.name == "hardened")
    plan = json.loads((PLANS / "hardened.json").read_text())
    plan["ops"] = [o for o in plan["ops"] if o["op"] != "no_new_privs"]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    result = mrunc("verify", str(tmp_path / "plan.json"), "--config", str(golden.config), private_mounts=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "/process/noNewPrivileges: the config sets no_new_privs; the plan does not" in result.stdout
    assert "missing no_new_privs [init] (/process/noNewPrivileges)" in result.stdout
