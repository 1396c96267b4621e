"""Real containers under restrictive seccomp allowlists: after seccomp_load init makes only the calls the process
model needs (order.py, rule 8), so a profile that allows what the container's program needs, and the id and
capability calls where the filter loads before them, starts the container; a profile lacking openat2 or
close_range (the conformance suite's default) no longer stops init."""

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest

from mrunc.compiler.compile import compile_bytes
from mrunc.compiler.errors import ConfigError
from mrunc.compiler.seccomp_check import EXECUTOR_ALWAYS
from mrunc.executor.ops import OPS
from tests.conftest import REFERENCE, REPO, base_config, mrunc, run_config
from tests.lifecycle_helpers import Lifecycle, running, wait_for

SUITE_PROFILE = json.loads((REFERENCE / "runtime-tools" / "default-seccomp.json").read_text())
# Every syscall busybox sh makes to run SCRIPT below in a container, as root or as uid 1000, its $(pwd) fork
# included (strace -f of the container process from its execve on). Nothing else.
BUSYBOX_SH = ["arch_prctl", "brk", "clone", "close", "dup2", "execve", "exit_group", "fcntl", "getcwd", "getgid",
              "getpid", "getppid", "getrandom", "getuid", "mprotect", "newfstatat", "openat", "pipe2", "poll",
              "prctl", "prlimit64", "read", "readlink", "rseq", "rt_sigaction", "rt_sigreturn", "set_robust_list",
              "set_tid_address", "setgid", "setuid", "uname", "wait4", "write"]
# What init's interpreter may ask for after the filter (its allocator: seccomp_check.EXECUTOR_ALWAYS), and what
# the process model needs after a filter loaded before the capability drop (no noNewPrivileges).
RUNTIME = sorted(EXECUTOR_ALWAYS)
ID_AND_CAPABILITY_CALLS = ["setgroups", "setresgid", "setresuid", "capset"]
# Shell builtins only: what the container says about itself, from inside.
SCRIPT = ("while read -r key value rest; do case $key in Uid:|Seccomp:|NoNewPrivs:) echo \"$key $value\";; esac; "
          "done < /proc/self/status; echo \"cwd $(pwd)\"")
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def allowlist(names: list[str], default_action: str) -> dict:
    return {"defaultAction": default_action, "architectures": ARCHES,
            "syscalls": [{"names": sorted(names), "action": "SCMP_ACT_ALLOW"}]}


def config_with(seccomp: dict, no_new_privs: bool, uid: int, args: list[str] | None = None) -> dict:
    config = base_config(args or ["sh", "-c", SCRIPT])
    config["process"]["noNewPrivileges"] = no_new_privs
    config["process"]["user"] = {"uid": uid, "gid": uid}
    config["process"]["cwd"] = "/tmp"
    config["linux"]["seccomp"] = copy.deepcopy(seccomp)
    return config


def said(uid: int, no_new_privs: bool) -> list[str]:
    """What SCRIPT prints in a container that runs as `uid` under a filter."""
    return [f"Uid: {uid}", f"NoNewPrivs: {int(no_new_privs)}", "Seccomp: 2", "cwd /tmp"]


CASES = [  # (id, profile, noNewPrivileges, uid)
    ("suite-default-root", SUITE_PROFILE, False, 0),
    ("suite-default-root-nnp", SUITE_PROFILE, True, 0),
    ("suite-default-user", SUITE_PROFILE, False, 1000),
    ("suite-default-user-nnp", SUITE_PROFILE, True, 1000),
    ("busybox-errno-user-nnp", allowlist(BUSYBOX_SH + RUNTIME, "SCMP_ACT_ERRNO"), True, 1000),
    ("busybox-kill-user-nnp", allowlist(BUSYBOX_SH + RUNTIME, "SCMP_ACT_KILL_PROCESS"), True, 1000),
    ("busybox-kill-root-nnp", allowlist(BUSYBOX_SH + RUNTIME, "SCMP_ACT_KILL_PROCESS"), True, 0),
    ("busybox-ids-errno-user", allowlist(BUSYBOX_SH + RUNTIME + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_ERRNO"),
     False, 1000),
    ("busybox-ids-kill-user", allowlist(BUSYBOX_SH + RUNTIME + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"),
     False, 1000),
    ("busybox-ids-kill-root", allowlist(BUSYBOX_SH + RUNTIME + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"),
     False, 0),
]


@pytest.mark.parametrize(("profile", "no_new_privs", "uid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_run_starts_the_container_under_a_restrictive_allowlist(bundle, profile, no_new_privs, uid):
    result = run_config(bundle, config_with(profile, no_new_privs, uid))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == said(uid, no_new_privs), result.stderr


def test_the_suite_profile_still_denies_what_it_does_not_list(bundle):
    """The filter is the suite's, in force: unshare is not on its list, so the container's unshare gets EPERM."""
    result = run_config(bundle, config_with(SUITE_PROFILE, False, 0, ["unshare", "-U", "true"]))
    assert result.returncode == 1 and "Operation not permitted" in result.stderr, result.stderr


@pytest.mark.parametrize(("profile", "no_new_privs"), [
    (SUITE_PROFILE, False),
    (allowlist(BUSYBOX_SH + RUNTIME, "SCMP_ACT_KILL_PROCESS"), True),
    (allowlist(BUSYBOX_SH + RUNTIME + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"), False),
], ids=["suite-default", "busybox-kill-nnp", "busybox-ids-kill"])
def test_create_then_start_waits_for_start_before_the_filter(bundle, tmp_path, profile, no_new_privs):
    """The fifo wait (and the "created" message to create) come before the filter: create returns, start runs."""
    lc = Lifecycle(bundle, tmp_path)
    try:
        assert lc.create(config_with(profile, no_new_privs, 1000)).returncode == 0, lc.output.read_text()
        assert lc.state()["status"] == "created"
        assert lc("start", bundle.id).returncode == 0
        wait_for(lambda: lc.state()["status"] == "stopped")
        assert lc.output.read_text().splitlines() == said(1000, no_new_privs)
    finally:
        lc.cleanup()


LOOP = ["sh", "-c", "while :; do read -t 1 x < /proc/self/status; done"]


@pytest.mark.parametrize(("profile", "no_new_privs"), [
    (SUITE_PROFILE, False),
    (allowlist(BUSYBOX_SH + RUNTIME, "SCMP_ACT_KILL_PROCESS"), True),
    (allowlist(BUSYBOX_SH + RUNTIME + ID_AND_CAPABILITY_CALLS, "SCMP_ACT_KILL_PROCESS"), False),
], ids=["suite-default", "busybox-kill-nnp", "busybox-ids-kill"])
def test_exec_into_a_container_under_a_restrictive_allowlist(bundle, tmp_path, profile, no_new_privs):
    """`mrunc exec ID` gives the new process the container's filter, loaded at the same point of its steps."""
    config = config_with(profile, no_new_privs, 1000, LOOP)
    with running(bundle, tmp_path, config) as lc:
        result = lc("exec", "--cwd", "/tmp", bundle.id, "--", "sh", "-c", SCRIPT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == said(1000, no_new_privs)


# --- the rule enforced: a filter that denies what init makes after it is refused, by compile and by verify ----

WITHOUT_SETRESUID = allowlist(BUSYBOX_SH + RUNTIME + ["setgroups", "setresgid", "capset"], "SCMP_ACT_KILL_PROCESS")


def test_compile_refuses_a_filter_that_denies_the_id_change_that_follows_it(bundle):
    """Without noNewPrivileges the id change follows the filter: a profile without setresuid would kill init
    there, so compile refuses it, naming the field that denies it, the syscall and the op."""
    config_path = bundle.write(config_with(WITHOUT_SETRESUID, False, 1000))
    result = mrunc("compile", str(config_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    message = result.stderr.split("invalid config:")[1].strip()
    assert message.startswith("/linux/seccomp/defaultAction: the filter loaded at op "), message
    assert "denies setresuid (KILL_PROCESS), which op " in message and " set_ids (/process/user) " in message
    assert "or set noNewPrivileges" in message
    refused = run_config(bundle, config_with(WITHOUT_SETRESUID, False, 1000))  # nothing made, nothing left
    assert refused.returncode == 1 and "denies setresuid" in refused.stderr and not refused.stdout


def test_with_no_new_privileges_the_same_filter_loads_after_the_id_change_and_runs(bundle):
    result = run_config(bundle, config_with(WITHOUT_SETRESUID, True, 1000))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == said(1000, True)


def test_compile_refuses_a_rule_that_denies_execve_naming_the_rule():
    config = config_with({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["execveat", "execve"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}, True, 0)
    with pytest.raises(ConfigError, match=r"^/linux/seccomp/syscalls/1: the filter loaded at op \d+ denies execve "
                                        r"\(ERRNO\(13\)\), which op \d+ execve \(/process/args\) makes after it"):
        compile_bytes(json.dumps(config).encode(), "/b", "refused")


def _plan_file(tmp_path, config: dict, name: str) -> tuple[dict, object]:
    plan = compile_bytes(json.dumps(config).encode(), str(tmp_path / "no-bundle"), name)
    return plan, tmp_path / f"{name}.json"


def _verify(path, plan: dict) -> tuple[int, list[str]]:
    path.write_text(json.dumps(plan))
    result = mrunc("verify", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, [line.strip() for line in result.stdout.splitlines()]


def test_verify_fails_a_plan_whose_filter_denies_an_id_call_after_it(tmp_path):
    """A plan made for a filter that allows the id change, given (by hand) a filter that does not."""
    plan, path = _plan_file(tmp_path, config_with(allowlist(BUSYBOX_SH + RUNTIME + ID_AND_CAPABILITY_CALLS,
                                                            "SCMP_ACT_ERRNO"), False, 1000), "edited")
    assert _verify(path, plan)[0] == 0
    denying, _ = _plan_file(tmp_path, config_with(WITHOUT_SETRESUID, True, 1000), "other")
    load = next(i for i, o in enumerate(plan["ops"]) if o["op"] == "seccomp_load")
    plan["ops"][load]["args"] = next(o for o in denying["ops"] if o["op"] == "seccomp_load")["args"]
    set_ids = next(i for i, o in enumerate(plan["ops"]) if o["op"] == "set_ids")
    status, lines = _verify(path, plan)
    assert status == 1
    assert (f"problem: /ops/{set_ids}: the filter loaded at op {load} denies setresuid (KILL_PROCESS), which op "
            f"{set_ids} set_ids (/process/user) makes after it every time") in lines, lines


def test_verify_fails_a_plan_that_closes_fds_after_a_filter_without_close_range(tmp_path):
    """main's old order under the conformance suite's profile: close_fds (close_range) after seccomp_load."""
    plan, path = _plan_file(tmp_path, config_with(SUITE_PROFILE, True, 0), "moved")
    names = [o["op"] for o in plan["ops"]]
    close_fds = plan["ops"].pop(names.index("close_fds"))
    plan["ops"].insert(names.index("seccomp_load"), close_fds)  # now right after the load
    load = names.index("seccomp_load") - 1
    status, lines = _verify(path, plan)
    assert status == 1
    assert (f"problem: /ops/{load + 1}: the filter loaded at op {load} denies close_range (ERRNO(1)), which op "
            f"{load + 1} close_fds (/process) makes after it every time") in lines, lines


def test_exec_refuses_a_process_whose_id_change_the_containers_filter_denies(bundle, tmp_path):
    """The container runs with noNewPrivileges under a filter without setresuid; a process exec'd without
    noNewPrivileges would change ids after the filter: refused before anything joins the container."""
    with running(bundle, tmp_path, config_with(WITHOUT_SETRESUID, True, 1000, LOOP)) as lc:
        process = dict(json.loads(bundle.config_path.read_text())["process"], args=["sh", "-c", SCRIPT],
                       noNewPrivileges=False)
        (tmp_path / "process.json").write_text(json.dumps(process))
        result = lc("exec", "--process", str(tmp_path / "process.json"), bundle.id)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert "/container/seccomp: the filter loaded at op " in result.stderr, result.stderr
        assert "denies setresuid (KILL_PROCESS)" in result.stderr and "set_ids (/process/user)" in result.stderr
        assert lc.state()["status"] == "running"
        ok = lc("exec", bundle.id, "--", "sh", "-c", SCRIPT)  # the container's own process: nnp, so it runs
        assert ok.returncode == 0 and ok.stdout.splitlines()[:3] == said(1000, True)[:3], ok.stderr


def test_trace_prints_the_ops_after_the_filter_before_loading_it(bundle):
    """--trace writes to stderr; a filter without write(2) would kill init at the first line after it, so the
    lines of the ops after seccomp_load are printed before the load."""
    no_write = allowlist([n for n in BUSYBOX_SH if n != "write"] + RUNTIME, "SCMP_ACT_KILL_PROCESS")
    config_path = bundle.write(config_with(no_write, True, 1000, ["true"]))
    plan_path = bundle.path / "plan.json"
    assert mrunc("compile", str(config_path), "-o", str(plan_path)).returncode == 0
    result = mrunc("exec", "--trace", str(plan_path))
    assert result.returncode == 0, result.stderr
    traced = [line for line in result.stderr.splitlines() if line.startswith("mrunc: op ")]
    ops = json.loads(plan_path.read_text())["ops"]
    n = len(ops)
    assert [o["op"] for o in ops[-2:]] == ["seccomp_load", "execve"]
    load, execve = traced[-2:]
    assert load.startswith(f"mrunc: op {n - 2}/{n} [init] seccomp_load bpf=") and not load.endswith("write)"), load
    assert execve.startswith(f"mrunc: op {n - 1}/{n} [init] execve args=['true'] env=") and execve.endswith(
        " (traced before seccomp_load, which may deny the write)"), execve


# --- what init really makes after the filter (strace), against the declarations the check relies on ------------

def _after_the_filter(trace: str) -> list[str]:
    """The syscalls of the process that loaded the filter, from its seccomp(2) to its execve(2)."""
    lines = [line.split(None, 1) for line in trace.splitlines() if line[:1].isdigit()]
    loader = next(pid for pid, call in lines if call.startswith("seccomp(SECCOMP_SET_MODE_FILTER, 0, {len="))
    calls = [call for pid, call in lines if pid == loader]
    start = next(i for i, call in enumerate(calls) if call.startswith("seccomp(SECCOMP_SET_MODE_FILTER, 0, {len="))
    names = []
    for call in calls[start + 1:]:
        if call.startswith(("<...", "+++", "---")):
            continue
        names.append(call.split("(", 1)[0])
        if names[-1] == "execve":
            break
    return names


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace to see init's syscalls")
@pytest.mark.parametrize("no_new_privs", [True, False], ids=["nnp", "no-nnp"])
def test_init_makes_after_the_filter_only_syscalls_its_ops_declare(bundle, no_new_privs):
    """strace of a real start: every syscall init makes after seccomp(2) is one the ops after seccomp_load declare
    (or the executor's allocator), so the compile check judges what really happens."""
    config = config_with(SUITE_PROFILE, no_new_privs, 1000, ["true"])
    config["process"]["capabilities"]["ambient"] = ["CAP_KILL"]
    for kind in ("inheritable", "permitted", "effective"):
        config["process"]["capabilities"][kind] = ["CAP_KILL"]
    config_path = bundle.write(config)
    plan_path, trace = bundle.path / "plan.json", bundle.path / "strace.txt"
    assert mrunc("compile", str(config_path), "-o", str(plan_path)).returncode == 0
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "strace", "-f", "-qq", "-o", str(trace),
                             sys.executable, "-m", "mrunc", "exec", str(plan_path)], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr
    ops = json.loads(plan_path.read_text())["ops"]
    load = [o["op"] for o in ops].index("seccomp_load")
    declared = {c if isinstance(c, str) else c[0] for o in ops[load + 1:] for c in OPS[o["op"]].syscalls}
    made = _after_the_filter(trace.read_text())
    assert made[-1] == "execve" and set(made) <= declared | set(EXECUTOR_ALWAYS), made
    expected = ["execve"] if no_new_privs else ["prctl", "setgroups", "setresgid", "setresuid", "capset", "execve"]
    assert list(dict.fromkeys(made)) == expected, made
