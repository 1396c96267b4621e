"""Escapes from runc/crun advisories, tried against real containers. Each attack is first shown to work on an
unprotected setup (a plan with the protecting op removed, or the kernel primitive done by hand in a private
mount namespace), so the protected run cannot pass by accident."""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO, base_config, mrunc, needs_binaries, needs_machine, run_config
from tests.hardened import HOST_ID, hardened_config, skip_unless_hardened

SECRET = "host-secret-7f3a"
RACE_RUNS = int(os.environ.get("MRUNC_RACE_RUNS", "8"))
C_SOURCES = Path(__file__).parent / "c"


def _compile(bundle, config: dict, without: tuple[str, ...] = ()) -> str:
    """Compile config for bundle; `without` removes every op of those names (the unprotected variant)."""
    bundle.write(config)
    result = mrunc("compile", str(bundle.config_path), private_mounts=False)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    if without:
        plan["ops"] = [o for o in plan["ops"] if o["op"] not in without]
    path = bundle.path / f"plan-without-{'-'.join(without)}.json"
    path.write_text(json.dumps(plan))
    return str(path)


def _exec_with_fd(plan: str, fd: int) -> subprocess.CompletedProcess:
    """`mrunc exec` as an engine that leaks `fd` to it would run it."""
    command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc", "exec", plan]
    return subprocess.run(command, pass_fds=(fd,), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def _host_dir_fd(tmp_path) -> int:
    secret_dir = tmp_path / "host"
    secret_dir.mkdir()
    (secret_dir / "secret").write_text(SECRET)
    return os.open(secret_dir, os.O_RDONLY | os.O_DIRECTORY)


# CVE-2024-21626 class: a host fd reaching the container, and a cwd through /proc/self/fd.

READ_THROUGH_FDS = "echo fds $(ls /proc/self/fd); for f in /proc/self/fd/*; do cat $f/secret 2>/dev/null; done; true"


def test_a_leaked_host_fd_never_reaches_the_container(bundle, tmp_path):
    fd = _host_dir_fd(tmp_path)
    try:
        config = base_config(["sh", "-c", READ_THROUGH_FDS])
        unprotected = _exec_with_fd(_compile(bundle, config, without=("close_caller_fds", "close_fds")), fd)
        protected = _exec_with_fd(_compile(bundle, config), fd)
    finally:
        os.close(fd)
    assert SECRET in unprotected.stdout, unprotected.stderr  # the attack works when the fd is left open
    assert protected.returncode == 0, protected.stderr
    assert protected.stdout.split() == ["fds", "0", "1", "2", "3"]  # 3: ls's own directory
    assert SECRET not in protected.stdout


def test_a_cwd_through_proc_self_fd_cannot_reach_the_host(bundle, tmp_path):
    fd = _host_dir_fd(tmp_path)
    try:
        leaked = base_config(["sh", "-c", f"cd /proc/self/fd/{fd} && cat secret"])
        unprotected = _exec_with_fd(_compile(bundle, leaked, without=("close_caller_fds", "close_fds")), fd)
        config = base_config(["sh", "-c", "cat secret; pwd"])
        config["process"]["cwd"] = f"/proc/self/fd/{fd}"
        # the fd left open in init (child's close_caller_fds removed), so the cwd's own resolution is what refuses
        protected = _exec_with_fd(_compile(bundle, config, without=("close_caller_fds",)), fd)
    finally:
        os.close(fd)
    assert SECRET in unprotected.stdout, unprotected.stderr
    assert protected.returncode == 1 and SECRET not in protected.stdout
    # refused where the cwd is first resolved inside the rootfs: making a missing cwd, or the chdir
    assert "(/process/cwd): " in protected.stderr and f"path=/proc/self/fd/{fd}" in protected.stderr
    assert "ELOOP" in protected.stderr


# seccomp on every x86 ABI; no_new_privs against setuid; the bounding set against file capabilities.

SECCOMP = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77},
        {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 78,
         "args": [{"index": 0, "value": 4242, "op": "SCMP_CMP_EQ"}]},
    ],
}


@pytest.fixture(scope="session")
def tools(tmp_path_factory) -> Path:
    """The C programs in tests/c, built static (the busybox rootfs has no libc)."""
    if not shutil.which("gcc"):
        pytest.skip("needs gcc to build the attack programs in tests/c (not installed on this host)")
    out = tmp_path_factory.mktemp("tools")
    for source in C_SOURCES.glob("*.c"):
        if source.stem == "abi" and os.uname().machine != "x86_64":
            continue  # raw x86 system calls: built, and used, on x86_64 only
        subprocess.run(["gcc", "-static", "-O1", "-o", str(out / source.stem), str(source)], check=True)
    return out


def _install(tools: Path, bundle, name: str, mode: int = 0o755) -> None:
    target = bundle.path / "rootfs" / name
    shutil.copy(tools / name, target)  # a copy, not the session's hard link: modes and xattrs are ours
    target.chmod(mode)


def _fields(stdout: str) -> dict[str, str]:
    return dict(line.split() for line in stdout.splitlines())


def _results(stdout: str) -> dict[str, int]:
    return {key: int(value) for key, value in _fields(stdout).items()}


def _runs_i386(tools: Path) -> bool:
    """Whether this kernel runs i386 system calls (IA32 emulation: a build option, and off with ia32_emulation=0)."""
    return _results(subprocess.run([tools / "abi"], capture_output=True, text=True).stdout)["i386-getpid"] > 0


needs_i386 = pytest.mark.usefixtures("i386_abi")


@pytest.fixture
def i386_abi(tools) -> None:
    if not _runs_i386(tools):
        pytest.skip("this kernel runs no i386 system calls (no IA32 emulation)")


@needs_machine("x86_64")  # tests/c/abi.c makes raw x86 system calls
@needs_i386
def test_seccomp_denies_on_every_x86_abi_with_errno_and_argument_filters(bundle, tools):
    _install(tools, bundle, "abi")
    config = base_config(["/abi"])
    config["linux"]["seccomp"] = SECCOMP
    unprotected = mrunc("exec", "--force", _compile(bundle, config, without=("seccomp_load",)))  # exec refuses it
    protected = mrunc("exec", _compile(bundle, config))
    assert unprotected.returncode == 0 and protected.returncode == 0, protected.stderr
    before, after = _results(unprotected.stdout), _results(protected.stdout)
    assert before["x86_64-getpid"] > 0 and before["i386-getpid"] > 0
    assert before["x86_64-getpgid-4242"] == before["i386-getpgid-4242"] == -errno.ESRCH
    assert after["x86_64-getpid"] == after["i386-getpid"] == -77
    # A kernel without the x32 ABI (most) refuses the call unprotected; the filter answers it first either way.
    assert (before["x32-getpid"] == -errno.ENOSYS or before["x32-getpid"] > 0) and after["x32-getpid"] == -77
    assert after["x86_64-getpgid-4242"] == after["i386-getpgid-4242"] == -78
    assert after["x86_64-getpgid-0"] >= 0 and after["i386-getpgid-0"] >= 0  # the filter matches 4242 only


@needs_machine("x86_64")
@needs_i386
def test_an_abi_the_profile_does_not_list_is_killed_not_let_through(bundle, tools):
    _install(tools, bundle, "abi")
    config = base_config(["/abi"])
    config["linux"]["seccomp"] = dict(SECCOMP, architectures=["SCMP_ARCH_X86_64"])
    result = mrunc("exec", _compile(bundle, config))
    assert result.stdout.splitlines() == ["x86_64-getpid -77"]  # the i386 call never returned
    assert result.returncode == 128 + signal.SIGSYS


def test_no_new_privileges_stops_a_setuid_binary(bundle, tools):
    _install(tools, bundle, "creds", 0o4755)
    config = base_config(["/creds"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["noNewPrivileges"] = False
    unprotected = mrunc("exec", _compile(bundle, config))
    config["process"]["noNewPrivileges"] = True
    protected = mrunc("exec", _compile(bundle, config))
    assert _fields(unprotected.stdout)["euid"] == "0", unprotected.stderr
    assert _fields(protected.stdout)["euid"] == "1000", protected.stderr


@needs_binaries("setcap")
def test_a_dropped_capability_is_not_regained_through_file_capabilities(bundle, tools):
    _install(tools, bundle, "creds")
    subprocess.run(["setcap", "cap_net_raw+ep", str(bundle.path / "rootfs" / "creds")], check=True)
    net_raw = 1 << 13
    config = base_config(["/creds"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["noNewPrivileges"] = False
    config["process"]["capabilities"]["bounding"].append("CAP_NET_RAW")
    unprotected = mrunc("exec", _compile(bundle, config))
    config["process"]["capabilities"]["bounding"].remove("CAP_NET_RAW")
    protected = mrunc("exec", _compile(bundle, config))
    assert int(_fields(unprotected.stdout)["capeff"], 16) & net_raw, unprotected.stderr
    # The kernel refuses to exec a capability-aware binary it cannot grant, or runs it without the capability.
    assert "EPERM" in protected.stderr or not int(_fields(protected.stdout)["capeff"], 16) & net_raw


# CVE-2021-30465 class: a mount destination through a symlink that points out of the rootfs.

def _outside_link(bundle, tmp_path, link: str) -> Path:
    """An empty host dir, and a symlink at `link` in the rootfs pointing at its absolute path."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (bundle.path / "rootfs" / link.lstrip("/")).symlink_to(outside / "target")
    return outside


def test_a_mount_through_a_symlink_lands_inside_the_rootfs(bundle, tmp_path):
    outside = _outside_link(bundle, tmp_path, "/evil")
    rootfs = bundle.path / "rootfs"
    (outside / "target").mkdir()
    naive = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs tmpfs {rootfs}/evil && touch {rootfs}/evil/marker && ls {outside}/target"],
                           capture_output=True, text=True)
    assert naive.stdout.split() == ["marker"], naive.stderr  # the kernel follows it out of the rootfs
    (rootfs / str(outside / "target").lstrip("/")).mkdir(parents=True)  # where it points, inside the rootfs
    config = base_config(["sh", "-c", f"touch /evil/x && grep -c ' {outside}/target .* tmpfs ' /proc/self/mountinfo"])
    config["mounts"].append({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"})
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 0 and result.stdout == "1\n", result.stderr
    assert list((outside / "target").iterdir()) == []


def test_a_mount_on_a_dangling_symlink_lands_at_its_target_inside_the_rootfs(bundle, tmp_path):
    """As runc: /data -> /nonexistent/dir is followed inside the rootfs and its missing target made there."""
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "marker").write_text(SECRET + "\n")
    (bundle.path / "rootfs" / "data").symlink_to("/nonexistent/dir")
    config = base_config(["sh", "-c", "cat /data/marker /nonexistent/dir/marker; grep -c ' /nonexistent/dir ' "
                                      "/proc/self/mountinfo"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": str(volume), "options": ["bind", "ro"]})
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [SECRET, SECRET, "1"]
    assert (bundle.path / "rootfs" / "nonexistent" / "dir").is_dir()


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_a_mount_point_is_never_created_through_a_dangling_symlink_outside(bundle, tmp_path, kind):
    """A dangling /etc/hosts pointing out of the rootfs (a host path, or enough `..` to climb out of it): the
    mount point is made where the link leads when the rootfs is `/`, never on the host."""
    rootfs = bundle.path / "rootfs"
    host_target = tmp_path / "outside" / "target" if kind == "absolute" else Path(f"/tmp/mrunc-escape-{os.getpid()}")
    host_target.parent.mkdir(exist_ok=True)
    link = host_target if kind == "absolute" else Path("../" * 40 + str(host_target).lstrip("/"))
    (rootfs / "etc" / "hosts").symlink_to(link)
    naive = subprocess.run(["touch", str(rootfs / "etc" / "hosts")])
    assert naive.returncode == 0 and host_target.exists()  # creating through it lands on the host
    host_target.unlink()
    config = base_config(["sh", "-c", f"cat /etc/hosts; grep -c ' {host_target} ' /proc/self/mountinfo"])
    config["mounts"].append({"destination": "/etc/hosts", "source": "/etc/hostname", "options": ["bind", "ro"]})
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [*Path("/etc/hostname").read_text().split(), "1"]
    assert not host_target.exists()
    assert (rootfs / str(host_target).lstrip("/")).is_file()  # the mount point, inside the rootfs


def test_a_symlink_swapped_in_during_setup_never_sends_a_mount_out(bundle, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    volume = bundle.path / "rootfs" / "vol"
    volume.mkdir()
    config = base_config(["sh", "-c", "touch /vol/target/marker"])
    config["mounts"].append({"destination": "/vol/target", "type": "tmpfs", "source": "tmpfs"})
    plan = _compile(bundle, config)
    stop = threading.Event()

    def swap() -> None:  # what a second container sharing /vol would do (CVE-2021-30465)
        target = volume / "target"
        while not stop.is_set():
            with contextlib.suppress(OSError):
                target.unlink() if target.is_symlink() else target.rmdir()
            with contextlib.suppress(OSError):
                target.symlink_to(outside)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        results = [mrunc("exec", plan) for _ in range(RACE_RUNS)]
    finally:
        stop.set()
        swapper.join()
    assert list(outside.iterdir()) == []
    for result in results:
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr


# CVE-2025-52565/52881 class: procfs writes redirected by a mount over /proc/sys, or by a /proc symlink.

def test_a_sysctl_write_redirected_by_a_mount_fails_closed(bundle, tmp_path):
    decoy = tmp_path / "decoy"
    decoy.write_text("untouched\n")
    naive = subprocess.run(["unshare", "-m", "-i", "--propagation", "private", "sh", "-c",
                            f"mount --bind {decoy} /proc/sys/kernel/shmmax && echo 123456 > /proc/sys/kernel/shmmax"])
    assert naive.returncode == 0 and decoy.read_text() == "123456\n"  # a plain write follows the mount
    decoy.write_text("untouched\n")
    config = base_config(["true"])
    config["mounts"].append({"destination": "/proc/sys/kernel/shmmax", "source": str(decoy), "options": ["bind"]})
    config["linux"]["sysctl"] = {"kernel.shmmax": "123456"}
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 1 and "sysctl (/linux/sysctl/kernel.shmmax)" in result.stderr
    assert "EXDEV" in result.stderr, result.stderr
    assert decoy.read_text() == "untouched\n"


def test_a_proc_symlink_cannot_fake_procfs(bundle):
    rootfs = bundle.path / "rootfs"
    (rootfs / "proc").rmdir()
    fake = rootfs / "fakeproc" / "sys" / "kernel"
    fake.mkdir(parents=True)
    (fake / "cap_last_cap").write_text("0\n")  # a runtime that believed it would keep every capability
    (fake / "shmmax").write_text("untouched\n")
    (rootfs / "proc").symlink_to("fakeproc")
    (rootfs / "proc" / "sys" / "kernel" / "shmmax").write_text("123456\n")  # a write by path lands in the fake
    assert (fake / "shmmax").read_text() == "123456\n"
    (fake / "shmmax").write_text("untouched\n")
    config = base_config(["grep", "CapBnd", "/proc/self/status"])
    config["mounts"] = [m for m in config["mounts"] if m["destination"] not in ("/proc", "/sys", "/sys/fs/cgroup")]
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    config["linux"]["sysctl"] = {"kernel.shmmax": "123456"}
    config["root"]["readonly"] = False  # its remount would already fail on the fake /proc
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 1 and "sysctl (/linux/sysctl/kernel.shmmax)" in result.stderr, result.stderr
    assert (fake / "shmmax").read_text() == "untouched\n"
    del config["linux"]["sysctl"]
    config["process"]["args"] = ["sh", "-c", "grep CapBnd /fakeproc/../proc/self/status || echo no procfs"]
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 0, result.stderr  # the bounding set was dropped without reading the fake


# CVE-2025-31133 class: masking with a /dev/null that is not the null device.

@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
@pytest.mark.parametrize("kind", ["symlink", "regular-file", "zero-device"])
def test_masking_fails_closed_when_dev_null_is_not_the_null_device(request, kind, userns, tmp_path):
    if userns:
        skip_unless_hardened()
    bundle = request.getfixturevalue("userns_bundle" if userns else "bundle")
    dev = bundle.path / "rootfs" / "dev"
    null = dev / "null"
    for sub in ("pts", "shm", "mqueue"):
        (dev / sub).mkdir()
    if userns:  # the user namespace's root may then create the device files
        for path in (dev, *dev.iterdir()):
            os.chown(path, HOST_ID, HOST_ID)
    if kind == "symlink":
        null.symlink_to("/proc/sys/kernel/core_pattern")  # masking with it would expose a host-wide file
    elif kind == "regular-file":
        null.write_text("not null")
    else:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    masked = tmp_path / "masked"
    masked.write_text("")
    naive = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount --bind {null} {masked} && head -c 8 {masked}"], capture_output=True)
    assert naive.returncode == 0 and naive.stdout, naive.stderr  # a mask bound from it hides nothing
    if kind == "symlink":  # it is the host's file
        assert naive.stdout == Path("/proc/sys/kernel/core_pattern").read_bytes()[:8]
    config = hardened_config(["stat", "-c", "%t:%T", "/proc/keys"], uid=0) if userns else \
        base_config(["stat", "-c", "%t:%T", "/proc/keys"])
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]  # the rootfs's own /dev
    result = mrunc("exec", _compile(bundle, config))
    if result.returncode == 0:
        assert result.stdout == "1:3\n"  # /proc/keys is masked by the real null device
    else:
        assert "mask_path (/linux/maskedPaths/" in result.stderr and "not the 1:3 character device" in result.stderr


# CVE-2019-5736 class: the container running, and then overwriting, the runtime's own binary.

def _interpreter_files() -> list[Path]:
    """The host interpreter mrunc runs on and the shared libraries it needs (an image could ship copies)."""
    binary = Path(os.path.realpath(sys.executable))
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return [binary] + [Path(word) for word in ldd.split() if word.startswith("/")]


def _digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _add_interpreter_libraries(rootfs: Path) -> None:
    """So the host's interpreter, once exec'd in the container, can start (and show that it ran)."""
    for library in _interpreter_files()[1:]:
        (rootfs / str(library.parent).lstrip("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy(library, rootfs / str(library).lstrip("/"))


def test_a_script_run_by_proc_self_exe_never_runs_or_reaches_the_runtime_binary(bundle):
    rootfs = bundle.path / "rootfs"
    _add_interpreter_libraries(rootfs)
    (rootfs / "evil").write_text("#!/proc/self/exe\n")
    (rootfs / "evil").chmod(0o755)
    (rootfs / "link").symlink_to("/proc/self/exe")
    (rootfs / "evil2").write_text("#!/link -x\n")
    (rootfs / "evil2").chmod(0o755)
    protected = [*_interpreter_files(), *Path(REPO, "mrunc").rglob("*.py")]
    before = _digests(protected)
    naive_runtime = f"import os; os.chroot({str(rootfs)!r}); os.chdir('/'); os.execv('/evil', ['/evil'])"
    naive = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount -t proc proc {rootfs}/proc && exec {sys.executable} -c "{naive_runtime}"'],
                           capture_output=True, text=True)
    assert "program name = '/proc/self/exe'" in naive.stderr, naive.stderr  # the runtime's interpreter ran in there
    for program in ("/evil", "/evil2", "/link"):
        config = base_config([program])
        config["root"]["readonly"] = False
        result = mrunc("exec", _compile(bundle, config))
        assert result.returncode == 1 and "Python" not in result.stderr, result.stderr
        assert "check_program (/process/args)" in result.stderr and "ELOOP" in result.stderr and "CVE-2019-5736" in \
            result.stderr
    assert _digests(protected) == before


def test_an_execute_only_script_cannot_hide_its_proc_self_exe_line(bundle):
    """Mode 0111: the container user may run /evil but not read it, so a check made as the user cannot see its
    `#!/proc/self/exe`. Without check_program (which reads it before the id change) the host's interpreter runs
    in the container; with it the program is refused. An execute-only binary still runs."""
    rootfs = bundle.path / "rootfs"
    _add_interpreter_libraries(rootfs)
    (rootfs / "evil").write_text("#!/proc/self/exe\n")
    (rootfs / "evil").chmod(0o111)
    shutil.copy(rootfs / "bin" / "busybox", rootfs / "echo")  # busybox runs the applet its name says
    (rootfs / "echo").chmod(0o111)
    protected = [*_interpreter_files(), *Path(REPO, "mrunc").rglob("*.py")]
    before = _digests(protected)
    config = base_config(["/evil"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    unprotected = mrunc("exec", _compile(bundle, config, without=("check_program",)))
    assert "program name = '/proc/self/exe'" in unprotected.stderr, unprotected.stderr  # the host's interpreter ran
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 1 and "Python" not in result.stderr, result.stderr
    assert "check_program (/process/args)" in result.stderr and "ELOOP" in result.stderr
    assert "CVE-2019-5736" in result.stderr
    config["process"]["args"] = ["/echo", "ran"]
    tool = mrunc("exec", _compile(bundle, config))
    assert (tool.returncode, tool.stdout) == (0, "ran\n"), tool.stderr
    assert _digests(protected) == before


def test_a_program_swapped_after_its_check_is_refused(bundle):
    """A startContainer hook runs in the container after check_program and before recheck_program: it swaps /prog
    for an execute-only `#!/proc/self/exe` script, which the user cannot read. Without check_program the late
    check cannot see the #! line and the host's interpreter runs; with it execve runs only the file checked."""
    rootfs = bundle.path / "rootfs"
    _add_interpreter_libraries(rootfs)

    def plant() -> None:
        for name, text, mode in (("prog", "#!/bin/sh\necho checked\n", 0o755), ("evil", "#!/proc/self/exe\n", 0o111)):
            (rootfs / name).unlink(missing_ok=True)
            (rootfs / name).write_text(text)
            (rootfs / name).chmod(mode)

    protected = [*_interpreter_files(), *Path(REPO, "mrunc").rglob("*.py")]
    before = _digests(protected)
    config = base_config(["/prog"])
    config["root"]["readonly"] = False
    config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mv /evil /prog"]}]}
    plant()
    unprotected = mrunc("exec", _compile(bundle, config, without=("check_program",)))
    assert "program name = '/proc/self/exe'" in unprotected.stderr, unprotected.stderr  # the host's interpreter ran
    plant()
    result = mrunc("exec", _compile(bundle, config))
    assert result.returncode == 1 and "Python" not in result.stderr and "checked" not in result.stdout, result.stderr
    assert "recheck_program (/process/args)" in result.stderr and "EPERM" in result.stderr, result.stderr
    assert "replaced" in result.stderr
    assert _digests(protected) == before
