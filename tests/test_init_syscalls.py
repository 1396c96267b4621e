"""The exact syscalls a small plan's init ops make, run against the recording fake (tests/fake_syscalls.py):
what the compiler's ops mean at the syscall level, in order, without touching the host."""

import json

import pytest

from mrunc.compiler.compile import compile_bytes
from mrunc.executor.flags import CAPABILITIES
from mrunc.tools.regen_plans import HOST_V1
from tests.fake_syscalls import FakeSyscalls

ROOTFS = "/b/rootfs"
CONFIG = {
    "ociVersion": "1.2.0",
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "box",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
               {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
               {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["rbind", "ro"]}],
    "process": {"cwd": "/", "args": ["sh", "-c", "true"], "env": ["PATH=/bin"], "noNewPrivileges": True,
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [5], "umask": 0o027},
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}],
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                                 "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}},
    "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}],
              "maskedPaths": ["/proc/kcore", "/sys/firmware", "/absent"], "readonlyPaths": ["/proc/sys"],
              "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}},
}
# The fake world: the host's /etc/hosts and /dev/null, the rootfs with its mount points, and (as the
# container sees them after pivot_root) /proc files to mask or make read-only. /absent does not exist.
WORLD = {"files": {"/etc/hosts", f"{ROOTFS}/etc/hosts", "/proc/kcore", "/bin/sh"},
         "dirs": {"/b", ROOTFS, f"{ROOTFS}/proc", f"{ROOTFS}/dev", f"{ROOTFS}/etc", "/proc/sys", "/sys/firmware"},
         "devices": {"/dev/null": (1, 3)}}


def init_ops(config: dict) -> list[dict]:
    """init's ops but its cgroup join, which writes to files child opened on the host (the real runs check it)."""
    ops = compile_bytes(json.dumps(config).encode(), "/b", "fake", HOST_V1)["ops"]
    after_fork = ops[[o["op"] for o in ops].index("fork_init") + 1:]
    return [o for o in after_fork if o["proc"] == "init" and o["op"] != "cgroup_join_self"]


def _node(name: str, major: int, minor: int) -> list[str]:
    path = f"'{ROOTFS}/dev/{name}'"
    return [f"mknod({path}, 'S_IFCHR|0o666', '{major}:{minor}')", f"fchownat({path}, 0, 0, 'AT_SYMLINK_NOFOLLOW')",
            f"chmod({path}, '0o666')"]


EXPECTED = [
    # rootfs: / private, rootfs bound onto itself, the mounts in listed order (targets resolved in the rootfs)
    "mount(None, '/', None, 'MS_REC|MS_PRIVATE', None)",
    "mount('/b/rootfs', '/b/rootfs', None, 'MS_BIND|MS_REC', None)",
    "mount('proc', fd:/b/rootfs/proc, 'proc', '0', None)",
    "mount('tmpfs', fd:/b/rootfs/dev, 'tmpfs', 'MS_NOSUID', 'mode=755')",
    "mount('/etc/hosts', fd:/b/rootfs/etc/hosts, None, 'MS_BIND|MS_REC', None)",
    "mount(None, fd:/b/rootfs/etc/hosts, None, 'MS_RDONLY|MS_REMOUNT|MS_BIND', None)",
    # the default /dev nodes and symlinks
    *_node("null", 1, 3), *_node("zero", 1, 5), *_node("full", 1, 7), *_node("tty", 5, 0),
    *_node("urandom", 1, 9), *_node("random", 1, 8),
    "symlink('/proc/self/fd', '/b/rootfs/dev/fd')",
    "symlink('/proc/self/fd/0', '/b/rootfs/dev/stdin')",
    "symlink('/proc/self/fd/1', '/b/rootfs/dev/stdout')",
    "symlink('/proc/self/fd/2', '/b/rootfs/dev/stderr')",
    "symlink('pts/ptmx', '/b/rootfs/dev/ptmx')",
    # pivot_root(".", "."), the old root made a slave and detached
    "fchdir('fd:/b/rootfs')", "pivot_root('.', '.')", "fchdir('fd:/')",
    "mount(None, '.', None, 'MS_REC|MS_SLAVE', None)", "umount2('.', 'MNT_DETACH')", "chdir('/')",
    # read-only root, hostname, read-only and masked paths (a file gets /dev/null, a dir an empty tmpfs)
    "mount(None, fd:/, None, 'MS_RDONLY|MS_REMOUNT|MS_BIND|MS_REC', None)",
    "sethostname('box')",
    "mount(fd:/proc/sys, fd:/proc/sys, None, 'MS_BIND|MS_REC', None)",
    "mount(None, fd:/proc/sys, None, 'MS_RDONLY|MS_REMOUNT|MS_BIND|MS_REC', None)",
    "mount(fd:/dev/null, fd:/proc/kcore, None, 'MS_BIND', None)",
    "mount('tmpfs', fd:/sys/firmware, 'tmpfs', 'MS_RDONLY', 'size=0k')",
    # limits and umask, then credentials: bounding set, keep-caps, groups/gid/uid, capset, ambient
    "setrlimit('RLIMIT_NOFILE', 64, 64)", "umask('0o27')",
    "fchdir('fd:/')",  # cwd opened inside our root, never through a magic link
    *(f"prctl('PR_CAPBSET_DROP', '{cap}')" for cap in CAPABILITIES if cap != "CAP_KILL"),
    "prctl('PR_CAPBSET_DROP', 41) = EINVAL",  # one past the kernel's last capability: the drop stops there
    "prctl('PR_SET_KEEPCAPS', 1)",
    "setgroups([5])", "setresgid(1000, 1000, 1000)", "setresuid(1000, 1000, 1000)",
    "capset('eff=CAP_KILL', 'prm=CAP_KILL', 'inh=CAP_KILL')",
    "prctl('PR_CAP_AMBIENT', 'PR_CAP_AMBIENT_RAISE', 'CAP_KILL')",
    "fchdir('fd:/')",
    # no_new_privs, fds close-on-exec, the signals Python ignores back to their defaults, then seccomp as late
    # as possible: after it, only execve
    "prctl('PR_SET_NO_NEW_PRIVS', 1)",
    "close_range(3, '0xffffffff', 4)",
    "signal('SIGPIPE', 'SIG_DFL')", "signal('SIGXFSZ', 'SIG_DFL')",
    "seccomp('SECCOMP_SET_MODE_FILTER', 0, '<9 insns>')",
    "execve('/bin/sh', ['sh', '-c', 'true'], ['PATH=/bin'])",
]


def test_init_ops_make_exactly_these_syscalls(monkeypatch):
    fake = FakeSyscalls(**WORLD)
    fake.install(monkeypatch)
    assert fake.run(init_ops(CONFIG)) == EXPECTED


def test_without_no_new_privs_only_the_id_and_capability_calls_and_execve_follow_the_filter(monkeypatch):
    """The filter loads while init may (CAP_SYS_ADMIN); close_range and the signal resets come before it, and after
    it every syscall is one the process model needs (the cwd was reached as root: no chdir after the filter)."""
    config = json.loads(json.dumps(CONFIG))
    config["process"]["noNewPrivileges"] = False
    fake = FakeSyscalls(**WORLD)
    fake.install(monkeypatch)
    calls = fake.run(init_ops(config))
    start = calls.index("setrlimit('RLIMIT_NOFILE', 64, 64)")
    load = calls.index("seccomp('SECCOMP_SET_MODE_FILTER', 0, '<9 insns>')")
    assert calls[start:load] == ["setrlimit('RLIMIT_NOFILE', 64, 64)", "umask('0o27')", "fchdir('fd:/')",
                                 "close_range(3, '0xffffffff', 4)",
                                 "signal('SIGPIPE', 'SIG_DFL')", "signal('SIGXFSZ', 'SIG_DFL')"]
    assert calls[load + 1:] == [
        *(f"prctl('PR_CAPBSET_DROP', '{cap}')" for cap in CAPABILITIES if cap != "CAP_KILL"),
        "prctl('PR_CAPBSET_DROP', 41) = EINVAL",
        "prctl('PR_SET_KEEPCAPS', 1)",
        "setgroups([5])", "setresgid(1000, 1000, 1000)", "setresuid(1000, 1000, 1000)",
        "capset('eff=CAP_KILL', 'prm=CAP_KILL', 'inh=CAP_KILL')",
        "prctl('PR_CAP_AMBIENT', 'PR_CAP_AMBIENT_RAISE', 'CAP_KILL')",
        "execve('/bin/sh', ['sh', '-c', 'true'], ['PATH=/bin'])",
    ]
    assert "prctl('PR_SET_NO_NEW_PRIVS', 1)" not in calls


def test_a_mount_target_escaping_through_a_symlink_is_not_followed_out_of_the_rootfs(monkeypatch):
    """Targets are opened relative to the rootfs, never by their host path: /etc/hosts in the config is
    /b/rootfs/etc/hosts, and a missing one is created there, not on the host."""
    config = json.loads(json.dumps(CONFIG))
    config["mounts"] = [{"destination": "/etc/shadow", "type": "bind", "source": "/etc/hosts", "options": ["bind"]}]
    fake = FakeSyscalls(**WORLD)
    fake.install(monkeypatch)
    calls = fake.run(init_ops(config))
    assert calls[2:4] == ["creat('/b/rootfs/etc/shadow', '0o644')",
                          "mount('/etc/hosts', fd:/b/rootfs/etc/shadow, None, 'MS_BIND', None)"]


@pytest.mark.parametrize("op", [{"op": "loopback_up", "args": {}},
                                {"op": "cgroup_write", "args": {"dir": "/sys/fs/cgroup/x", "file": "x", "value": "1"}}])
def test_an_op_the_fake_does_not_cover_fails_instead_of_reaching_the_host(monkeypatch, op):
    fake = FakeSyscalls(**WORLD)
    fake.install(monkeypatch)
    with pytest.raises(AssertionError, match="is not faked"):
        fake.run([op])


def test_an_os_call_the_fake_does_not_know_fails_by_name(monkeypatch):
    fake = FakeSyscalls(**WORLD)
    with pytest.raises(AssertionError, match="fake os.getcwd is not faked"):
        fake.os.getcwd()
