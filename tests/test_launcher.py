"""bin/mrunc, the lean launcher (`python -I -S bin/mrunc`): the exec path stays small, other commands still work."""

import base64
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mrunc.cli import COMMANDS
from mrunc.executor import b64
from mrunc.executor.optable import COMMON_MODULES, RARE_MODULES
from tests.conftest import REPO, SECCOMP_CACHE, base_config
from tests.test_real_cgroups import needs_controllers

LAUNCHER = [sys.executable, "-I", "-S", str(REPO / "bin" / "mrunc")]
# Never on the exec path: the compile-time packages, and the stdlib modules that exec has no use for.
NOT_ON_EXEC_PATH = {"site", "jsonschema", "jinja2", "pyseccomp", "json", "argparse", "dataclasses", "typing",
                    "inspect", "importlib.metadata", "platform", "base64", "mrunc.compiler", "re", "enum", "socket",
                    "signal", "selectors", "collections", "hashlib",
                    # each maps a shared library into every mrunc process (issue 4: peak RSS)
                    "ctypes", "binascii", "zlib", "termios", "select", "_struct", "fcntl", "_socket",
                    # a module each: ~0.1 ms of start-up for what int.to_bytes and string annotations do
                    "struct", "__future__"}
# Op modules for a few configs (network devices, terminals, process attributes, pid files): exec imports one
# only for a plan that names one of its ops (optable.find).
RARE_OP_MODULES = {f"mrunc.executor.{name}" for name in RARE_MODULES} | {"mrunc.executor.netlink", "mrunc.executor.ops"}
# Engines call the lifecycle commands for every container (state and kill over and over): the exec path's rule but
# for fcntl (the lock) and select (start's wait for init's execve); no argparse (it imports shutil and its
# compression modules), contextlib or functools; and no executor (its ops, the op table, libc) but where the
# command runs part of a plan.
NOT_ON_LIFECYCLE_PATH = (NOT_ON_EXEC_PATH - {"fcntl", "select"}) | RARE_OP_MODULES | {
    "shutil", "gettext", "contextlib", "functools", "mrunc.executor.run", "mrunc.executor.libc", "_ctypes"}
LEAN_STATE = {"mrunc.executor.optable", "mrunc.executor.ops_lifecycle"}  # state, list, kill, pause: not even these


def launch(*args: str, private_mounts: bool = False) -> subprocess.CompletedProcess:
    command = [*LAUNCHER, *args]
    if private_mounts:
        command = ["unshare", "-m", "--propagation", "private", *command]
    env = {"PATH": os.environ["PATH"], "MRUNC_SECCOMP_CACHE": SECCOMP_CACHE}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def imported_modules(importtime_stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_compile_loads_site_packages_on_demand_and_exec_runs_the_plan(bundle):
    config = base_config(["sh", "-c", "echo from $(hostname); exit 3"])
    config_path = bundle.write(config)
    plan_path = bundle.path / "plan.json"
    compiled = launch("compile", str(config_path), "-o", str(plan_path))
    assert compiled.returncode == 0, compiled.stderr
    result = launch("exec", str(plan_path), private_mounts=True)
    assert (result.stdout, result.returncode) == ("from runc\n", 3), result.stderr


def test_compile_from_a_venv_finds_its_packages_without_site(bundle):
    """The venv's site-packages is on the path from the start; the standard library's probes for what this
    platform lacks (`copy` tries Jython's org.python) are misses that must not load site either."""
    config_path = bundle.write(base_config(["true"]))
    command = [sys.executable, "-X", "importtime", *LAUNCHER[1:], "compile", str(config_path), "-o",
               str(bundle.path / "plan.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    modules = imported_modules(result.stderr)
    assert "mrunc.compiler.compile" in modules
    assert "site" not in modules and not any(m.startswith("__editable__") for m in modules), sorted(modules)


def test_site_loads_for_a_missing_package_but_not_for_the_standard_librarys_platform_probes():
    launcher_classes = (REPO / "bin" / "mrunc").read_text().split("\ndef _put_mrunc_on_path")[0]
    check = launcher_classes + """
import sys
for probe in ("org", "nt", "_winapi", "winreg"):
    assert _SiteOnDemand.find_spec(probe) is None
assert "site" not in sys.modules
_SiteOnDemand.find_spec("no_such_package_anywhere")
print("site" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-I", "-S", "-c", check], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


def exec_with_importtime(bundle, config: dict) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Compile `config`, exec its plan through the launcher under -X importtime: the result, the modules imported."""
    config_path = bundle.write(config)
    plan_path = bundle.path / "plan.json"
    assert launch("compile", str(config_path), "-o", str(plan_path)).returncode == 0
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-X", "importtime", *LAUNCHER[1:],
               "exec", str(plan_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result, imported_modules(result.stderr)


def test_exec_path_imports_no_compiler_and_no_heavy_stdlib(bundle):
    _, modules = exec_with_importtime(bundle, base_config(["true"]))
    assert "mrunc.executor.run" in modules  # the listing is real: it shows what exec did import
    assert {f"mrunc.executor.{name}" for name in COMMON_MODULES} <= modules
    assert not modules & (NOT_ON_EXEC_PATH | RARE_OP_MODULES), sorted(modules & (NOT_ON_EXEC_PATH | RARE_OP_MODULES))


def test_exec_imports_a_rare_op_module_for_a_plan_that_names_one_of_its_ops(bundle):
    config = base_config(["uname", "-m"])
    # On x86_64 the 32-bit personality shows that the op ran; elsewhere LINUX (a 32-bit one may not exist there)
    domain, shown = ("LINUX32", "i686") if os.uname().machine == "x86_64" else ("LINUX", os.uname().machine)
    config["linux"]["personality"] = {"domain": domain}
    result, modules = exec_with_importtime(bundle, config)
    assert result.stdout == f"{shown}\n"  # the op ran: init's personality is the one asked for
    needed = RARE_MODULES[:RARE_MODULES.index("ops_procattrs") + 1]  # find tries them in order
    assert modules & RARE_OP_MODULES == {f"mrunc.executor.{name}" for name in needed}


def lifecycle_with_importtime(state_root, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    command = [sys.executable, "-X", "importtime", *LAUNCHER[1:], "--root", str(state_root), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (args, result.stderr)
    return result, imported_modules(result.stderr)


def test_lifecycle_commands_import_only_the_lean_stdlib(bundle, tmp_path):
    from tests.lifecycle_helpers import Lifecycle

    lc = Lifecycle(bundle, tmp_path)
    try:
        assert lc.create(base_config(["sleep", "100"])).returncode == 0, lc.output.read_text()
        steps = [("state", bundle.id), ("list",), ("list", "--format", "json"), ("ps", bundle.id),
                 ("kill", bundle.id, "0"), ("start", bundle.id), ("pause", bundle.id), ("resume", bundle.id),
                 ("kill", "--all", bundle.id, "KILL"), ("delete", bundle.id)]
        for args in steps:
            if args[0] == "delete":
                lc.wait_status("stopped")
            result, modules = lifecycle_with_importtime(bundle.state_root, *args)
            assert f"mrunc.commands.{COMMANDS[args[0]]}" in modules  # the listing is real
            assert not modules & NOT_ON_LIFECYCLE_PATH, (args, sorted(modules & NOT_ON_LIFECYCLE_PATH))
            if args[0] in ("state", "list", "kill", "pause", "resume"):
                assert not modules & LEAN_STATE, (args, sorted(modules & LEAN_STATE))
            if args[0] == "state":
                assert json.loads(result.stdout)["status"] == "created"
            if args[0] == "list" and len(args) > 1:
                assert [c["id"] for c in json.loads(result.stdout)] == [bundle.id]
        assert lc("list", "-q").stdout == ""
    finally:
        lc.cleanup()


# exec ID and update compile a plan of their own (so they may import the compiler), but read their options as the
# lifecycle commands do: argparse would add itself, shutil and gettext to every call engines make (probes, updates).
ARGPARSE = {"argparse", "shutil", "gettext"}


@needs_controllers("pids")
def test_exec_into_a_container_and_update_read_their_options_without_argparse(bundle, tmp_path):
    from tests.lifecycle_helpers import Lifecycle

    config = base_config(["sleep", "100"])
    config["linux"]["resources"] = {"pids": {"limit": 100}}
    lc = Lifecycle(bundle, tmp_path)
    try:
        assert lc.create(config).returncode == 0, lc.output.read_text()
        assert lc("start", bundle.id).returncode == 0
        steps = {"exec": ("exec", "--env", "A=1", "-e", "B=2", bundle.id, "--", "sh", "-c", "echo $A$B"),
                 "update": ("update", "--pids-limit", "50", "--plan", bundle.id)}
        for name, args in steps.items():
            command = ["unshare", "-m", "--propagation", "private", sys.executable, "-X", "importtime",
                       *LAUNCHER[1:], "--root", str(bundle.state_root), *args]
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, (args, result.stderr)
            modules = imported_modules(result.stderr)
            assert f"mrunc.commands.{'exec_container' if name == 'exec' else name}" in modules  # the listing is real
            assert not modules & ARGPARSE, (name, sorted(modules & ARGPARSE))
            expected = "12\n" if name == "exec" else "pids.max value=50"
            assert expected in result.stdout, result.stdout
    finally:
        lc.cleanup()


def test_every_op_module_is_common_or_rare_so_the_full_table_has_all_ops():
    """mrunc.executor.ops (the compiler's and verify's table) imports COMMON_MODULES and RARE_MODULES only."""
    on_disk = {path.stem for path in (REPO / "mrunc" / "executor").glob("ops_*.py")}
    assert on_disk == set(COMMON_MODULES) | set(RARE_MODULES)
    assert not set(COMMON_MODULES) & set(RARE_MODULES)


def test_bad_plan_through_launcher_is_one_line_error(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"format": "mrunc-plan/1", ')
    result = launch("exec", str(plan))
    assert result.returncode == 1
    assert result.stderr.startswith(f"mrunc: {plan}: ") and "not a JSON plan" in result.stderr
    assert "Traceback" not in result.stderr


def test_bpf_text_in_plans_decodes_as_the_base64_module_does():
    for data in [b"", b"\0", b"\0\0\xff", bytes(range(256)), os.urandom(2512), *map(os.urandom, range(1, 40))]:
        assert b64.decode(base64.b64encode(data).decode()) == data
    for bad in ("abc", "ab!d", "a===", "=AAA"):
        try:
            b64.decode(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} decoded")


# The installed command: mrunc built from a copy of this checkout and installed by pip, as a user would.


def _install(top: Path, editable: bool) -> Path:
    """`pip install .` (or `pip install -e .`) of a copy of this checkout into a new virtualenv; returns the venv.
    Its dependencies and the build backend are this venv's, linked into the new one's site-packages, so pip
    needs no network (--no-index --no-deps) and the result is what a plain install puts there."""
    source, venv = top / "source", top / "venv"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("bin", "mrunc"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = Path(sysconfig.get_paths(vars={"base": str(venv)})["purelib"])
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.split("-")[0] not in ("mrunc", "pip", "__pycache__") and entry.suffix != ".pth" and \
                not entry.name.startswith("__editable__"):
            (site_packages / entry.name).symlink_to(entry)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-index", "--no-deps", "--no-build-isolation", *(["-e"] if editable else []), str(source)],
                   check=True, capture_output=True)
    return venv


@pytest.fixture(scope="module", params=["pip install .", "pip install -e ."])
def installed(request, tmp_path_factory) -> tuple[Path, Path]:
    """(venv, where its mrunc package lies): the installed copy, or the editable install's source."""
    top = tmp_path_factory.mktemp("installed")
    editable = request.param.endswith("-e .")
    venv = _install(top, editable)
    site_packages = Path(sysconfig.get_paths(vars={"base": str(venv)})["purelib"])
    return venv, (top / "source" if editable else site_packages) / "mrunc"


def installed_command(venv: Path, *args: str) -> list[str]:
    """What the installed `mrunc` runs, as its shell part execs it (`sh -x` shows the exec)."""
    traced = subprocess.run(["sh", "-x", str(venv / "bin" / "mrunc"), *args], capture_output=True, text=True,
                            timeout=60, env={"PATH": os.environ["PATH"]})
    execs = [line.split()[2:] for line in traced.stderr.splitlines() if line.startswith("+ exec ")]
    assert execs, traced.stderr
    return execs[-1]


def test_installed_command_starts_its_venvs_python_without_site(installed):
    venv, _ = installed
    assert installed_command(venv, "--version") == [str(venv / "bin" / "python3"), "-I", "-S",
                                                    str(venv / "bin" / "mrunc"), "--version"]
    result = subprocess.run([str(venv / "bin" / "mrunc"), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("mrunc version "), result.stderr


def test_installed_command_through_a_symlink_starts_the_python_beside_its_target(installed, tmp_path):
    venv, _ = installed
    (tmp_path / "mrunc").symlink_to(venv / "bin" / "mrunc")
    traced = subprocess.run(["sh", "-x", str(tmp_path / "mrunc"), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert f"+ exec {venv / 'bin' / 'python3'} -I -S {tmp_path / 'mrunc'} --version" in traced.stderr, traced.stderr
    assert traced.stdout.startswith("mrunc version ")


def test_installed_command_finds_mrunc_without_site_and_execs_a_plan_importing_only_the_stdlib(installed, bundle):
    venv, package = installed
    config_path = bundle.write(base_config(["sh", "-c", "echo from $(hostname); exit 3"]))
    plan_path = bundle.path / "plan.json"
    # compile needs jsonschema, jinja2 and pyseccomp, from the venv's site-packages
    compiled = subprocess.run([str(venv / "bin" / "mrunc"), "compile", str(config_path), "-o", str(plan_path)],
                              capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]})
    assert compiled.returncode == 0, compiled.stderr
    python, *rest = installed_command(venv, "exec", str(plan_path))
    command = ["unshare", "-m", "--propagation", "private", python, "-v", "-X", "importtime", *rest]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert (result.stdout, result.returncode) == ("from runc\n", 3), result.stderr
    modules = imported_modules(result.stderr)
    assert "mrunc.executor.run" in modules
    assert not modules & (NOT_ON_EXEC_PATH | RARE_OP_MODULES), sorted(modules & (NOT_ON_EXEC_PATH | RARE_OP_MODULES))
    loaded_from = [line for line in result.stderr.splitlines() if line.startswith("# code object from ")
                   and "cli." in line and "/mrunc/" in line]
    assert loaded_from and str(package) in loaded_from[0], loaded_from
    # and a lifecycle call through it, as engines make them: the lean standard library only
    python, *rest = installed_command(venv, "--root", str(bundle.state_root), "list", "--format", "json")
    listed = subprocess.run([python, "-X", "importtime", *rest], capture_output=True, text=True, timeout=60)
    assert (listed.returncode, listed.stdout) == (0, "[]\n"), listed.stderr
    modules = imported_modules(listed.stderr)
    assert "mrunc.commands.list_containers" in modules
    assert not modules & (NOT_ON_LIFECYCLE_PATH | LEAN_STATE), sorted(modules & (NOT_ON_LIFECYCLE_PATH | LEAN_STATE))


# What made compile slow, ms each (issue 13): none of it is imported by a compile of a valid config whose seccomp
# filter is in the cache (site: nothing the launcher must look for in site-packages).
NOT_IN_A_WARM_COMPILE = {"site", "jsonschema", "jinja2", "pyseccomp", "ctypes", "json", "re", "enum", "typing",
                         "dataclasses", "inspect", "collections", "base64", "hashlib", "argparse", "difflib"}


def test_warm_compile_of_podmans_config_imports_nothing_slow(tmp_path):
    config = REPO / "reference" / "configs" / "podman-run-netns.json"
    plan = tmp_path / "plan.json"
    assert launch("compile", str(config), "-o", str(plan)).returncode == 0  # warms the seccomp cache
    command = [sys.executable, "-X", "importtime", *LAUNCHER[1:], "compile", str(config), "-o", str(plan)]
    warm = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "MRUNC_SECCOMP_CACHE": SECCOMP_CACHE})
    assert warm.returncode == 0, warm.stderr
    assert imported_modules(warm.stderr) & NOT_IN_A_WARM_COMPILE == set()
