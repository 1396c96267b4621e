"""A rootfs whose /proc, /sys, /dev or a directory under /dev is a symlink (CVE-2023-28642 class): refused as runc
refuses it ('must be mounted on ordinary directory'), before anything is made, by the compiler; and by init if the
rootfs changed after the plan was compiled. Followed, procfs would be mounted where the link points (/tmp/x)."""

import json
import os
import shutil

import pytest

from tests.conftest import base_config, mrunc, run_config


def _without_mount(config: dict, destination: str) -> dict:
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != destination]
    return config


def _replace_with_link(rootfs, path: str, target: str) -> None:
    where = rootfs / path.lstrip("/")
    if where.is_dir() and not where.is_symlink():
        shutil.rmtree(where)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(target)


CASES = [  # (destination replaced by a link, the filesystem refused there, mounts dropped from the config)
    ("/proc", "proc", ()),
    ("/sys", "sysfs", ()),
    ("/dev", "tmpfs", ()),
    ("/dev/mqueue", "mqueue", ("/dev",)),  # a child of /dev, when no tmpfs covers the rootfs's /dev
]


@pytest.mark.parametrize("destination,fstype,dropped", CASES)
def test_a_symlinked_kernel_dir_is_refused_before_anything_is_made(bundle, destination, fstype, dropped):
    rootfs = bundle.path / "rootfs"
    _replace_with_link(rootfs, destination, "/tmp/x")
    config = base_config(["true"])
    for gone in dropped:
        _without_mount(config, gone)
    index = next(i for i, m in enumerate(config["mounts"]) if m["destination"] == destination)
    result = run_config(bundle, config)
    assert result.returncode != 0
    assert f"/mounts/{index}/destination: {destination}: {destination} is a symlink in the rootfs (to '/tmp/x')" \
           in result.stderr, result.stderr
    assert f"filesystem {fstype!r} must be mounted on ordinary directory" in result.stderr
    assert not (rootfs / "tmp" / "x").exists()  # nothing made where the link points
    assert not bundle.state_root.exists() or not any(bundle.state_root.iterdir())


def test_a_kernel_dir_that_is_a_file_is_refused(bundle):
    rootfs = bundle.path / "rootfs"
    shutil.rmtree(rootfs / "proc")
    (rootfs / "proc").write_text("not a directory\n")
    result = run_config(bundle, base_config(["true"]))
    assert result.returncode != 0 and "/proc is not a directory in the rootfs" in result.stderr, result.stderr


def test_compile_refuses_it_with_the_pointer_and_nothing_else_mounts_there(bundle):
    _replace_with_link(bundle.path / "rootfs", "/proc", "../tmp/x")
    bundle.write(base_config(["true"]))
    result = mrunc("compile", str(bundle.config_path), private_mounts=False)
    assert result.returncode != 0 and result.stdout == ""
    assert "/mounts/0/destination" in result.stderr and "must be mounted on ordinary directory" in result.stderr


def test_a_link_swapped_in_after_compile_is_refused_by_init(bundle):
    """The plan was compiled while /proc was a directory; init finds a symlink there and refuses (ELOOP), making
    nothing where it points, and the run leaves nothing behind."""
    rootfs = bundle.path / "rootfs"
    bundle.write(base_config(["true"]))
    compiled = mrunc("compile", str(bundle.config_path), private_mounts=False)
    assert compiled.returncode == 0, compiled.stderr
    plan = bundle.path / "plan.json"
    plan.write_text(compiled.stdout)
    ops = json.loads(compiled.stdout)["ops"]
    proc_mount = next(o for o in ops if o["op"] == "mount" and o["args"]["fstype"] == "proc")
    assert proc_mount["args"]["create"] == "ordinary_dir"
    _replace_with_link(rootfs, "/proc", "/tmp/x")
    result = mrunc("exec", str(plan))
    assert result.returncode != 0
    assert "mount (/mounts/0)" in result.stderr and "ELOOP" in result.stderr, result.stderr
    assert "must be mounted on ordinary directory" in result.stderr
    assert not (rootfs / "tmp" / "x").exists()


def test_real_directories_still_work(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "grep -c ' /proc proc ' /proc/self/mounts"]))
    assert result.returncode == 0 and result.stdout.strip() == "1", result.stderr
    assert not os.path.islink(bundle.path / "rootfs" / "proc")
