"""Issue 16.3: maskedPaths and readonlyPaths that are symlinks in the rootfs. Each is resolved inside the rootfs
(an absolute target starts at the rootfs, `..` stops there: never outside it) and what it names is masked or made
read-only, as runc does by mounting after pivot_root; the plan listing shows what that is. A link that names
nothing (dangling, or naming a host path the rootfs lacks) hides nothing, as runc skips a missing path."""

import os

from tests.conftest import base_config, mrunc, run_config

CORE_PATTERN = "/proc/sys/kernel/core_pattern"


def listing(bundle, config: dict) -> str:
    bundle.write(config)
    result = mrunc("compile", str(bundle.config_path), "--format", "text", private_mounts=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_masked_symlink_to_core_pattern_leaves_core_pattern_unreadable(bundle):
    """The attacker's case: rootfs/evil -> /proc/sys/kernel/core_pattern and /evil masked."""
    (bundle.path / "rootfs" / "evil").symlink_to(CORE_PATTERN)
    host_value = open(CORE_PATTERN).read()
    assert host_value  # the kernel always has one: an empty read below means masked, not an empty file
    script = f"cat {CORE_PATTERN} | wc -c; cat /evil | wc -c; stat -c %t:%T {CORE_PATTERN}; readlink /evil"
    config = base_config(["sh", "-c", script])
    config["linux"]["maskedPaths"] = ["/evil"]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["0", "0", "1:3", CORE_PATTERN], result.stderr
    assert open(CORE_PATTERN).read() == host_value  # the host's is untouched and still readable
    text = listing(bundle, config)
    assert f"mask_path           path={CORE_PATTERN}  # /linux/maskedPaths/0" in text
    assert f"note: /linux/maskedPaths/0: /evil goes through a symlink in the rootfs: mask_path of what it names, " \
           f"{CORE_PATTERN}" in text


def test_a_readonly_symlink_makes_its_target_directory_read_only(bundle):
    rootfs = bundle.path / "rootfs"
    (rootfs / "data").mkdir()
    (rootfs / "ro").symlink_to("data")  # relative, as most rootfs links are
    config = base_config(["sh", "-c", "touch /data/x 2>&1; touch /tmp/y && echo tmp-writable"])
    config["root"]["readonly"] = False
    config["linux"]["readonlyPaths"] = ["/ro"]
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["touch: /data/x: Read-only file system", "tmp-writable"], result.stderr
    assert "readonly_path       path=/data  # /linux/readonlyPaths/0" in listing(bundle, config)


def test_a_link_climbing_out_of_the_rootfs_masks_the_rootfs_file_of_that_name(bundle):
    """`..` stops at the rootfs, as the kernel's walk stops at the container's root: ../../../../etc/passwd
    names the container's /etc/passwd, never the host's."""
    (bundle.path / "rootfs" / "up").symlink_to("../../../../../../etc/passwd")
    config = base_config(["sh", "-c", "cat /etc/passwd | wc -c; stat -c %t:%T /etc/passwd"])
    config["linux"]["maskedPaths"] = ["/up"]
    host_passwd = open("/etc/passwd").read()
    result = run_config(bundle, config)
    assert result.stdout.splitlines() == ["0", "1:3"], result.stderr
    assert open("/etc/passwd").read() == host_passwd
    assert "mask_path           path=/etc/passwd  # /linux/maskedPaths/0" in listing(bundle, config)


def test_a_link_to_a_host_path_the_rootfs_lacks_or_a_dangling_link_hides_nothing(bundle, tmp_path):
    """An absolute target is looked up in the rootfs: a path only the host has names nothing in the container,
    so nothing is masked and the container runs (runc skips a masked path that does not exist)."""
    host_only = tmp_path / "host-only-secret"
    host_only.write_text("host")
    rootfs = bundle.path / "rootfs"
    (rootfs / "hostlink").symlink_to(host_only)
    (rootfs / "dangling").symlink_to("/nowhere")
    config = base_config(["sh", "-c", "readlink /hostlink; readlink /dangling; cat /hostlink 2>&1 | wc -l; echo ran"])
    config["linux"]["maskedPaths"] = ["/hostlink", "/dangling"]
    config["linux"]["readonlyPaths"] = ["/dangling"]
    result = run_config(bundle, config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(host_only), "/nowhere", "1", "ran"]
    assert host_only.read_text() == "host" and not os.path.ismount(host_only)
    text = listing(bundle, config)  # (the op's own line cuts a long path: the note has it whole)
    assert f"/linux/maskedPaths/0: /hostlink goes through a symlink in the rootfs: mask_path of what it names, " \
           f"{host_only}\n" in text
    assert "/linux/maskedPaths/1: /dangling goes through a symlink in the rootfs: mask_path of what it names, " \
           "/nowhere\n" in text


def test_a_link_changed_after_compile_is_refused_not_masked_elsewhere(bundle, tmp_path):
    rootfs = bundle.path / "rootfs"
    (rootfs / "secret").write_text("secret")
    (rootfs / "other").write_text("other")
    (rootfs / "evil").symlink_to("/secret")
    config = base_config(["cat", "/secret"])
    config["linux"]["maskedPaths"] = ["/evil"]
    bundle.write(config)
    plan = tmp_path / "plan.json"
    assert mrunc("compile", str(bundle.config_path), "-o", str(plan), private_mounts=False).returncode == 0
    (rootfs / "secret").unlink()
    (rootfs / "secret").symlink_to("/other")  # what the plan masks now names another file
    result = mrunc("exec", str(plan))
    assert result.returncode == 1 and result.stdout == ""
    assert "mask_path (/linux/maskedPaths/" in result.stderr
    assert "/secret names /other now, not what the plan was compiled with; recompile" in result.stderr


def test_a_link_through_a_magic_link_is_refused_not_followed(bundle):
    """/proc/PID/root and the like jump wherever that process's root is: a masked path through one is refused
    (RESOLVE_NO_MAGICLINKS), with the op named, and nothing is left behind."""
    (bundle.path / "rootfs" / "magic").symlink_to("/proc/self/root/etc/passwd")
    config = base_config(["echo", "user process ran"])
    config["linux"]["maskedPaths"] = ["/magic"]
    result = run_config(bundle, config)
    assert result.returncode == 1 and "user process ran" not in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "mask_path (/linux/maskedPaths/0)" in lines[0] and "ELOOP" in lines[0], result.stderr
    assert not (bundle.state_root / bundle.id).exists()
