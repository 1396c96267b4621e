"""Real containers: the process (args, env, cwd, user, umask, groups), rlimits, capabilities, no_new_privs,
oom_score_adj, each read back from inside the container."""

import os

from tests.conftest import base_config, run_config

ALL_FIVE = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def _status(stdout: str) -> dict[str, str]:
    """Fields of /proc/self/status printed by the container."""
    return dict(line.split(":\t", 1) for line in stdout.splitlines() if ":\t" in line)


def _bits(*numbers: int) -> int:
    return sum(1 << n for n in numbers)


def test_args_env_and_cwd(bundle):
    (bundle.path / "rootfs" / "srv" / "app").mkdir(parents=True)
    config = base_config(["sh", "-c", 'echo "$0|$1|$GREETING|$EMPTY|$(pwd)"; env | grep -c =', "first", "second"])
    config["process"]["env"] = ["PATH=/bin", "GREETING=hello world", "EMPTY="]
    config["process"]["cwd"] = "/srv/app"
    result = run_config(bundle, config)
    # exactly the configured environment (plus PWD, SHLVL the shell sets): nothing leaks from mrunc's
    assert result.stdout.splitlines() == ["first|second|hello world||/srv/app", "5"], result.stderr


def test_user_uid_gid_groups_and_umask(bundle):
    config = base_config(["sh", "-c", "id; umask; cd /tmp && touch f && stat -c '%u:%g %a' f"])
    config["root"]["readonly"] = False
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027, "additionalGids": [5, 44]}
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["uid=1000(user) gid=1000(user) groups=5,44", "0027", "1000:1000 640"], \
        result.stderr


def test_cwd_only_the_user_can_enter(bundle):
    """cwd is tried again after the id change: a directory root may not enter (root has no CAP_DAC_*) works."""
    private = bundle.path / "rootfs" / "home" / "user" / "private"
    private.mkdir()
    private.chmod(0o700)
    os.chown(private, 1000, 1000)
    config = base_config(["pwd"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["cwd"] = "/home/user/private"
    result = run_config(bundle, config)
    assert result.stdout.strip() == "/home/user/private", result.stderr


def test_rlimits_soft_and_hard(bundle):
    script = "ulimit -Sn; ulimit -Hn; ulimit -Sc; ulimit -Hc; ulimit -Su; ulimit -Hu"
    config = base_config(["sh", "-c", script])
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},  # busybox ulimit -c counts 512-byte blocks
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
    ]
    result = run_config(bundle, config)
    assert result.stdout.split() == ["100", "200", "0", "8", "300", "400"], result.stderr


def test_nofile_limit_is_enforced(bundle):
    config = base_config(["sh", "-c", "exec 3</dev/null 4</dev/null 5</dev/null 6</dev/null && echo opened"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 5, "hard": 5}]
    result = run_config(bundle, config)
    assert "opened" not in result.stdout
    assert result.returncode != 0, result.stderr


def test_all_five_capability_sets_for_a_non_root_user(bundle):
    """Ambient capabilities survive execve as a non-root user; the bounding set stays as configured."""
    config = base_config(["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    result = run_config(bundle, config)
    status = {k: int(v, 16) for k, v in _status(result.stdout).items() if k in ALL_FIVE}
    chown, kill, bind, raw = 0, 5, 10, 13
    assert status == {
        "CapInh": _bits(kill, bind),
        "CapPrm": _bits(bind),  # after execve as non-root: permitted = ambient
        "CapEff": _bits(bind),
        "CapBnd": _bits(chown, kill, bind, raw),
        "CapAmb": _bits(bind),
    }, result.stderr


def test_root_keeps_permitted_capabilities_and_may_use_them(bundle):
    script = "grep -E '^Cap(Prm|Eff|Amb)' /proc/self/status; chown 1000 /tmp && echo chowned; hostname x 2>&1"
    config = base_config(["sh", "-c", script])
    config["root"]["readonly"] = False
    config["process"]["capabilities"] = {name: ["CAP_CHOWN"] for name in ("bounding", "permitted", "effective")}
    result = run_config(bundle, config)
    lines = result.stdout.splitlines()
    assert [int(line.split()[1], 16) for line in lines[:3]] == [1, 1, 0], result.stderr
    assert lines[3] == "chowned"
    assert "Operation not permitted" in lines[4]  # no CAP_SYS_ADMIN: sethostname refused


def test_no_new_privileges_on_and_off(bundle):
    for flag, expected in ((True, "1"), (False, "0")):
        config = base_config(["grep", "NoNewPrivs", "/proc/self/status"])
        config["process"]["noNewPrivileges"] = flag
        result = run_config(bundle, config)
        assert result.stdout.split() == ["NoNewPrivs:", expected], result.stderr


def test_oom_score_adj(bundle):
    config = base_config(["cat", "/proc/self/oom_score_adj"])
    config["process"]["oomScoreAdj"] = 345
    result = run_config(bundle, config)
    assert result.stdout.strip() == "345", result.stderr


def test_umask_defaults_to_0022_whatever_mrunc_was_started_with(bundle):
    """runc's default: the container must not inherit the umask of the shell that ran the runtime."""
    result = run_config(bundle, base_config(["sh", "-c", "umask"]), preexec_fn=lambda: os.umask(0o077))
    assert result.stdout.strip() == "0022", result.stderr


def test_missing_cwd_is_created_even_under_a_readonly_root(bundle):
    """As runc does: the directory is made before the root turns read-only, and only inside the rootfs."""
    config = base_config(["pwd"])
    config["process"]["cwd"] = "/no/such/dir"
    result = run_config(bundle, config)
    assert result.stdout.strip() == "/no/such/dir", result.stderr
    assert (bundle.path / "rootfs" / "no" / "such" / "dir").is_dir()


def test_cwd_through_a_dangling_symlink_is_made_inside_the_rootfs_never_outside(bundle, tmp_path):
    """As runc: the link is followed as if the rootfs were `/` (ops_fs._make_in_root), so the cwd is made at its
    target inside the rootfs, never on the host."""
    outside = tmp_path / "outside"
    (bundle.path / "rootfs" / "escape").symlink_to(outside)
    config = base_config(["pwd"])
    config["process"]["cwd"] = "/escape/made"
    result = run_config(bundle, config)
    assert result.returncode == 0 and result.stdout == f"{outside}/made\n", result.stderr
    assert (bundle.path / "rootfs" / str(outside).lstrip("/") / "made").is_dir()
    assert not outside.exists()


def test_an_rlimit_the_kernel_refuses_is_reported_with_its_errno(bundle):
    """A hard RLIMIT_NOFILE above fs.nr_open is EPERM for anyone, as raising a hard limit is without
    CAP_SYS_RESOURCE: the op reports the kernel's errno (not Python's ValueError) and the container does not run."""
    above = int(open("/proc/sys/fs/nr_open").read()) + 1
    config = base_config(["echo", "ran"])
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": above, "hard": above}]
    result = run_config(bundle, config)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert (f"[init] setrlimit (/process/rlimits/0): type=RLIMIT_NOFILE soft={above} hard={above}: "
            "EPERM (Operation not permitted)") in result.stderr
