"""The sh and py renderings: both parse for every golden plan, and the py one runs a real container with no
mrunc importable (it embeds the executor)."""

import json
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mrunc.compiler import render, render_sh
from mrunc.compiler.compile import compile_bytes
from mrunc.tools.regen_plans import GOLDENS, PLANS
from tests.conftest import REPO, base_config, mrunc
from tests.test_hooks import assert_hook_ran_as_the_process, hook_as_process_config


def golden_plan(name: str) -> dict:
    return json.loads((PLANS / f"{name}.json").read_text())


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_sh_rendering_of_every_golden_passes_sh_n(golden, tmp_path):
    script = tmp_path / "plan.sh"
    script.write_text(render.script(golden_plan(golden.name), "sh"))
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_sh_rendering_renders_every_op_or_names_it_as_a_gap(golden):
    plan = golden_plan(golden.name)
    script = render.script(plan, "sh")
    blocks = script.split("\n# op ")[1:]
    assert len(blocks) == len(plan["ops"])
    gaps = [f"{i} [{o['proc']}] {o['op']} ({o['src']})" for i, o in enumerate(plan["ops"])
            if "# NOT EXPRESSIBLE in sh: " in blocks[i]]
    assert gaps == render_sh.context(plan)["gaps"]
    assert all(f"#   op {gap}\n" in script for gap in gaps)
    for i, block in enumerate(blocks):  # a command, or a comment saying where it went or why it cannot be
        lines = block.splitlines()[1:]
        assert any(not line.startswith("#") or line.startswith(("# done by", "# sh", "# NOT EXPRESSIBLE"))
                   for line in lines), (i, block)


def test_sh_rendering_refuses_to_run_a_plan_it_cannot_express_fully(tmp_path):
    """seccomp cannot be loaded from sh: the script stops before touching anything, and says why."""
    script = tmp_path / "plan.sh"
    script.write_text(render.script(golden_plan("hardened"), "sh"))
    assert "seccomp_load (/linux/seccomp)" in script.read_text()
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "sh cannot express 1 op(s) of this plan" in result.stderr


@pytest.mark.parametrize("flags, words", [
    (["MS_BIND", "MS_REC"], "rbind"), (["MS_PRIVATE", "MS_REC"], "rprivate"), (["MS_SLAVE"], "slave"), ([], ""),
    (["MS_BIND", "MS_REMOUNT", "MS_NOSUID", "MS_RDONLY"], "bind,remount,nosuid,ro")])
def test_mount_flags_become_mount8_option_words(flags, words):
    assert render_sh.mount_options(flags) == words


def test_sh_rendering_gathers_namespaces_ids_and_privileges_into_nsenter_unshare_and_setpriv():
    podman = golden_plan("podman-run-netns")
    (netns,) = [o["args"]["path"] for o in podman["ops"] if o["op"] == "setns"]
    assert render_sh.context(podman)["enter"][:2] == ["nsenter", f"--net={netns}"]
    rootless = render_sh.context(golden_plan("runc-spec-rootless"))["enter"]
    assert rootless[rootless.index("--user"):][:3] == ["--user", "--map-users=0,0,1", "--map-groups=0,0,1"]
    assert render_sh.context(golden_plan("hardened"))["setpriv"] == [
        "--bounding-set=-all,+kill,+net_bind_service", "--regid=1000", "--reuid=1000", "--groups=1000",
        "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service", "--no-new-privs"]


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda g: g.name)
def test_py_rendering_of_every_golden_compiles_and_lists_the_plan(golden, tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(render.script(golden_plan(golden.name), "py"))
    py_compile.compile(str(script), doraise=True)
    listing = subprocess.run([sys.executable, "-I", str(script), "--list"], capture_output=True, text=True)
    assert listing.stdout == (PLANS / f"{golden.name}.txt").read_text()


def _python_script(bundle, config: dict):
    bundle.write(config)
    script = bundle.path.parent / "plan.py"
    compiled = mrunc("compile", str(bundle.config_path), "--format", "py", "-o", str(script), private_mounts=False)
    assert compiled.returncode == 0, compiled.stderr
    return script


def _run_isolated(*args: str) -> subprocess.CompletedProcess:
    """python -I -S: no PYTHONPATH, no current directory, no site-packages (where CI installs mrunc), so mrunc
    itself cannot be imported."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-I", "-S", *args],
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_py_rendering_runs_a_real_container_without_mrunc_importable(bundle):
    assert _run_isolated("-c", "import mrunc").returncode != 0
    script = _python_script(bundle, base_config(["sh", "-c", "hostname; echo $$; grep NoNewPrivs /proc/self/status; "
                                                 "exit 3"]))
    result = _run_isolated(str(script))
    assert result.stdout.split() == ["runc", "1", "NoNewPrivs:", "1"], result.stderr
    assert result.returncode == 3


def test_py_rendering_runs_a_start_container_hook_as_the_container_process(bundle, tmp_path):
    """The embedded executor gives the hook's child the filter and then the credentials (no no_new_privs)."""
    config, record = hook_as_process_config(tmp_path, no_new_privs=False)
    result = _run_isolated(str(_python_script(bundle, config)))
    assert result.returncode == 0, result.stderr
    assert_hook_ran_as_the_process(record.read_text(), result.stdout, no_new_privs=False)


def test_py_rendering_refuses_a_bundle_whose_config_changed(bundle):
    config = base_config(["true"])
    script = _python_script(bundle, config)
    config["hostname"] = "changed"
    bundle.write(config)
    result = _run_isolated(str(script))
    assert result.returncode == 1
    assert "changed since the plan was compiled" in result.stderr and "Traceback" not in result.stderr


def test_sh_rendering_sets_personality_scheduler_and_io_priority_with_wrappers_before_setpriv(tmp_path):
    """setarch, chrt, nice and ionice run as root and exec the next; setpriv then drops privileges."""
    config = base_config(["true"])
    config["linux"]["personality"] = {"domain": "LINUX32"}
    config["process"]["scheduler"] = {"policy": "SCHED_RR", "priority": 5, "nice": 2,
                                      "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    plan = compile_bytes(json.dumps(config).encode(), str(tmp_path))
    sh = render_sh.context(plan)
    assert sh["wrap"] == [["setarch", "linux32"], ["chrt", "--rr", "--reset-on-fork", "5"], ["nice", "-n", "2"],
                          ["ionice", "-c", "3", "-n", "0"]]
    assert sh["gaps"] == []
    script = render.script(plan, "sh")  # each the host's, copied, through fd 9 (see the sh test of the example)
    assert ("exec $H $T/setarch linux32 $H $T/chrt --rr --reset-on-fork 5 $H $T/nice -n 2 $H $T/ionice -c 3 -n 0 "
            "$H $T/setpriv ") in script
    config["process"]["scheduler"]["flags"] = ["SCHED_FLAG_KEEP_PARAMS"]  # chrt has no option for it
    plan = compile_bytes(json.dumps(config).encode(), str(tmp_path))
    assert [gap.split()[2] for gap in render_sh.context(plan)["gaps"]] == ["sched_setattr"]


def _sh_of_example(bundle, args: list[str] | None = None, mounts: list[dict] = ()) -> Path:
    """examples/hello's config in a busybox bundle (as scripts/demo.sh makes it), in this test's cgroup, as sh."""
    config = json.loads((REPO / "examples" / "hello" / "config.json").read_text())
    config["linux"]["cgroupsPath"] = bundle.cgroup
    config["mounts"] += mounts
    if args:
        config["process"]["args"] = args
    bundle.write(config)
    script = bundle.path.parent / "plan.sh"
    compiled = mrunc("compile", str(bundle.config_path), "--format", "sh", "-o", str(script), private_mounts=False)
    assert compiled.returncode == 0, compiled.stderr
    return script


def _run_sh(script: Path, tmp_path, path: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"):
    """`sh plan.sh` as a user runs it (in a private mount namespace, as every test does), then the caller's cgroups."""
    tmpdir = tmp_path / "script-tmp"
    tmpdir.mkdir(exist_ok=True)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           'sh "$0"; echo "status $?"; cat /proc/$$/cgroup', str(script)],
                          capture_output=True, text=True, timeout=120, env={"PATH": path, "TMPDIR": str(tmpdir)})


@pytest.mark.skipif(not shutil.which("setpriv") or not shutil.which("prlimit") or not shutil.which("ldd"),
                    reason="the sh rendering runs the host's setpriv and prlimit (ldd finds their libraries)")
def test_sh_rendering_runs_the_bundled_example_for_real_with_the_hosts_tools(bundle, tmp_path):
    """A busybox rootfs has neither prlimit nor a full setpriv: the script runs the host's, copied before
    pivot_root; only init joins the cgroups, which are gone afterwards (the autouse fixture), and so is the
    tools' staging directory."""
    result = _run_sh(_sh_of_example(bundle), tmp_path)
    lines = result.stdout.splitlines()
    assert lines[:5] == ["hello from runc, pid 1, uid 0", "CapEff:\t0000000020000420", "NoNewPrivs:\t1",
                         "Seccomp:\t0", "/ is read-only"], result.stderr
    assert lines[5] == "status 0"
    assert not any(bundle.cgroup in line for line in lines[6:]), lines  # the caller never joined them
    assert list((tmp_path / "script-tmp").iterdir()) == []


@pytest.mark.skipif(not shutil.which("setpriv") or not shutil.which("ldd"), reason="needs setpriv and ldd")
@pytest.mark.parametrize("args, expected", [
    (["cat", "/proc/self/environ"],
     ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]),
    (["ls", "/proc/self/fd"], ["0", "1", "2", "3"]),  # 3: ls's own directory; not fd 9, the host's tools
])
def test_sh_rendering_gives_the_program_only_its_env_and_stdio(bundle, tmp_path, args, expected):
    """(the host's sh exports the environment in an order of its own)"""
    result = _run_sh(_sh_of_example(bundle, args), tmp_path)
    output, status = result.stdout.split("status ", 1)
    assert sorted(output.replace("\0", "\n").split()) == expected and status.startswith("0\n"), result.stderr


def test_sh_rendering_refuses_before_anything_is_made_when_host_tools_are_missing(bundle, tmp_path):
    script = _sh_of_example(bundle)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in render_sh.HOST_COMMANDS | {"env", "hostname", "ip"}:
        if found := shutil.which(name):
            (bin_dir / name).symlink_to(found)
    result = _run_sh(script, tmp_path, path=str(bin_dir))
    prefix = "mrunc plan: not found on this host:"
    message = next(line for line in result.stderr.splitlines() if line.startswith(prefix))
    missing = message.removeprefix(prefix).removesuffix(" (nothing was made)").split()
    assert {"prlimit", "setpriv"} <= set(missing) and message.endswith("(nothing was made)"), message
    assert "status 1" in result.stdout  # and the autouse fixture finds no cgroup made


@pytest.mark.skipif(not shutil.which("setpriv") or not shutil.which("ldd"), reason="needs setpriv and ldd")
def test_sh_rendering_of_a_tmpcopyup_mount_copies_the_directory_for_real(bundle, tmp_path):
    tmpfs = {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "tmpcopyup"]}
    result = _run_sh(_sh_of_example(bundle, ["sh", "-c", "grep ' /etc ' /proc/mounts; cat /etc/group"], [tmpfs]),
                     tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tmpfs /etc tmpfs rw,nosuid"), (result.stdout, result.stderr)
    assert lines[1:3] == ["root:x:0:", "user:x:1000:"] and lines[3] == "status 0"
    assert list((tmp_path / "script-tmp").iterdir()) == []
