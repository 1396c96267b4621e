"""Faults: a hardened plan is made to fail at every op in turn (MRUNC_FAULT_AT, executor/run.py). Each failure
must be one line naming the op, exit status 1, and leave nothing: no cgroup, no process, no state dir, no
mount (the autouse check in conftest also looks)."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO, base_config, mrunc, run_config
from tests.hardened import hardened_config, needs_hardened, skip_unless_hardened

WORKERS = 2  # the host has two cores; each worker runs its own copy of the plan (own cgroup path)
CHECK = "echo $(id -u) $(cat /proc/self/uid_map) $(grep Seccomp: /proc/self/status)"


def _compile(bundle, config: dict, cgroup: str, name: str) -> tuple[Path, dict]:
    """Compile config with this cgroup path in its own bundle dir (a plan is tied to its bundle's config.json),
    sharing the bundle's rootfs."""
    config = dict(config, root={"path": str(bundle.path / "rootfs"), "readonly": True},
                  linux=dict(config["linux"], cgroupsPath=cgroup))
    directory = bundle.path.parent / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    path = directory / "plan.json"
    result = mrunc("compile", str(directory / "config.json"), "-o", str(path), private_mounts=False)
    assert result.returncode == 0, result.stderr
    return path, json.loads(path.read_text())


def _processes_running(plan_path: Path) -> list[str]:
    """Processes whose command line names this plan: the runtime, child or init before execve."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(plan_path).encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            pass
    return found


def _fault_problems(plan_path: Path, plan: dict, i: int) -> list[str]:
    """Run the plan with a fault at op i; return what went wrong (empty: failed cleanly)."""
    result = mrunc("exec", str(plan_path), env={"MRUNC_FAULT_AT": str(i)})
    o, n = plan["ops"][i], len(plan["ops"])
    problems = []
    lines = result.stderr.splitlines()
    if result.returncode != 1:
        problems.append(f"exit status {result.returncode}")
    if len(lines) != 1 or not lines[0].startswith(f"mrunc: op {i}/{n} [{o['proc']}] {o['op']} ({o['src']}):") \
            or not lines[0].endswith("EIO (fault injected by MRUNC_FAULT_AT)"):
        problems.append(f"stderr {result.stderr!r}")
    if result.stdout:
        problems.append(f"the container ran: {result.stdout!r}")
    left = [o["args"]["dir"] for o in plan["ops"] if o["op"] == "cgroup_mkdir" and Path(o["args"]["dir"]).exists()]
    if left:
        problems.append(f"cgroups left: {left}")
    if pids := _processes_running(plan_path):
        problems.append(f"processes left: {pids}")
    return [f"op {i} ({o['op']}): {p}" for p in problems]


@needs_hardened
def test_hardened_plan_runs_through_exec(userns_bundle):
    bundle = userns_bundle
    path, plan = _compile(bundle, hardened_config(["sh", "-c", CHECK]), bundle.cgroup, "compiled")
    result = mrunc("exec", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000", "0", "100000", "65536", "Seccomp:", "2"]


@needs_hardened
def test_a_fault_at_any_op_fails_cleanly_and_leaves_nothing(userns_bundle):
    bundle = userns_bundle
    config = hardened_config(["sh", "-c", CHECK])
    plans = [_compile(bundle, config, f"{bundle.cgroup}-{w}", f"worker-{w}") for w in range(WORKERS)]
    ops = plans[0][1]["ops"]
    names = {o["op"] for o in ops}
    assert {"cgroup_write", "fork", "write_id_map", "fork_init", "pivot_root", "seccomp_load", "execve"} <= names

    def worker(w: int) -> list[str]:
        path, plan = plans[w]
        return [p for i in range(w, len(ops), WORKERS) for p in _fault_problems(path, plan, i)]

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for found in pool.map(worker, range(WORKERS)) for p in found]
    assert not problems, "\n".join(problems)


@needs_hardened
def test_a_fault_in_each_process_under_run_removes_the_state_dir(userns_bundle):
    bundle = userns_bundle
    config = hardened_config(["true"])
    _, plan = _compile(bundle, config, bundle.cgroup, "compiled")
    ops = plan["ops"]
    first = {}
    for i, o in enumerate(ops):
        first.setdefault(o["op"] if o["op"] in ("fork", "fork_init", "write_id_map") else o["proc"], i)
    for i in sorted(first.values()) + [len(ops) - 1]:
        result = run_config(bundle, config, env={"MRUNC_FAULT_AT": str(i)})
        assert result.returncode == 1
        assert f"mrunc: op {i}/{len(ops)} " in result.stderr and "Traceback" not in result.stderr
        assert not (bundle.state_root / bundle.id).exists()



@pytest.mark.parametrize("pid_namespace", [True, False], ids=["pid-1", "no-pid-namespace"])
def test_init_dying_unreported_before_execve_is_an_error_not_a_run(userns_bundle, pid_namespace):
    """init SIGKILLed after its last message to runtime (MRUNC_FAULT_AT=N:kill) closes the sync socket as execve
    would: exec and run must still exit 1 naming the death, not report the status of a program that never
    ran. A program that does run and exits 137 at once keeps its own status. (A pid namespace's init ignores
    its own SIGKILL: the fault hook then exits 137.)"""
    if pid_namespace:
        skip_unless_hardened()
    bundle = userns_bundle
    config = hardened_config(["sh", "-c", "exit 137"])
    if not pid_namespace:  # nor a user namespace: its root may not mount a proc of the host's pid namespace
        config = base_config(["sh", "-c", "exit 137"])
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
    path, plan = _compile(bundle, config, bundle.cgroup, "compiled")
    ops = plan["ops"]
    execve = len(ops) - 1
    last_runtime_op = max(i for i, o in enumerate(ops) if o["proc"] == "runtime")
    first_unreported = next(i for i in range(last_runtime_op, execve) if ops[i]["proc"] == "init")
    assert ops[execve]["op"] == "execve"
    ran = mrunc("exec", str(path))
    assert (ran.returncode, ran.stderr) == (137, ""), ran.stderr
    death = "exited with status 137" if pid_namespace else "was killed by signal 9"
    for i in (first_unreported, execve):
        env = {"MRUNC_FAULT_AT": f"{i}:kill"}
        for result in (mrunc("exec", str(path), env=env), run_config(bundle, config, env=env)):
            lines = result.stderr.splitlines()
            assert result.returncode == 1 and len(lines) == 1, (i, result.returncode, result.stderr)
            assert lines[0].startswith(f"mrunc: op {execve}/{len(ops)} [init] execve (/process/args): ")
            assert lines[0].endswith(f"ERROR (init {death} during setup, before execve)"), lines
            assert not (bundle.state_root / bundle.id).exists()


def test_without_a_mount_namespace_a_fault_at_any_op_leaves_no_mount_in_the_runtimes(bundle):
    """The container's mounts go into the runtime's own mount namespace (config-linux.md: inherited), under init's
    bind of the rootfs: whichever op fails, the runtime detaches that bind before it exits. Each run is in a private
    namespace of its own, read after mrunc has gone."""
    config = base_config(["true"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] not in ("mount", "pid")]
    plans = [_compile(bundle, config, f"{bundle.cgroup}-{w}", f"worker-{w}") for w in range(WORKERS)]
    ops = plans[0][1]["ops"]
    assert {"unmount_at_exit", "chroot", "mask_path", "readonly_path"} <= {o["op"] for o in ops}
    rootfs = bundle.path / "rootfs"

    def fault(w: int, i: int) -> list[str]:
        path, plan = plans[w]
        script = f'"$@" 2>/dev/null; echo $?; grep -c " {rootfs}" /proc/self/mountinfo'
        result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                                 sys.executable, "-m", "mrunc", "exec", str(path)], capture_output=True, text=True,
                                timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO), MRUNC_FAULT_AT=str(i)))
        status_left = result.stdout.split()  # mrunc's exit status, then how many mounts remain under the rootfs
        return [] if status_left == ["1", "0"] else [f"op {i} ({ops[i]['op']}): status, mounts left: {status_left}"]

    def worker(w: int) -> list[str]:
        return [p for i in range(w, len(ops), WORKERS) for p in fault(w, i)]

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for found in pool.map(worker, range(WORKERS)) for p in found]
    assert not problems, "\n".join(problems)
