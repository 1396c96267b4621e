"""Mount propagation on real containers: linux.rootfsPropagation in every form (Docker writes rslave/rshared, test
tools rprivate) and the r-forms as mount options, read back from the container's /proc/self/mountinfo (what findmnt
reads), against the peer group of the host side.

The "host" here is a private mount namespace of the test's own, in which the bundle is a shared mount: so the
container's mounts either join its peer group (shared:N), receive from it (master:N), or neither."""

import subprocess
import sys

import pytest

from mrunc.review import inputs, profiles
from mrunc.review.audit import audit
from mrunc.review.diff import diff
from tests.conftest import REPO, base_config

SHOW = ["sh", "-c", "cat /proc/self/mountinfo"]


def run_under_shared_bundle(bundle, config: dict, volume=None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Run the container with its bundle a shared mount of the host, a host tmpfs mounted below its rootfs (/mnt)
    and `volume` (a dir) a shared mount of its own; -> (the container's mount point -> its optional fields, the
    host's peer group of each: bundle, mnt, volume). Also checks nothing the container mounted reached the host."""
    bundle.write(config)
    b = str(bundle.path)
    v = str(volume or bundle.path)
    share_volume = f'mount --bind "{v}" "{v}" && mount --make-shared "{v}" && ' if volume else ""
    script = (f'mount --bind "{b}" "{b}" && mount --make-shared "{b}" && mount -t tmpfs tmpfs "{b}/rootfs/mnt" && '
              f'{share_volume}"$@" && echo "--- host" && cat /proc/self/mountinfo')
    (bundle.path / "rootfs" / "mnt").mkdir(exist_ok=True)
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", sys.executable,
                             "-m", "mrunc", "--root", str(bundle.state_root), "run", "--bundle", b, bundle.id],
                            capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert result.returncode == 0, result.stderr
    inside, host = (_optional_fields(part) for part in result.stdout.split("--- host\n"))
    assert len([p for p in host if p.startswith(b)]) == 2, host  # the bundle and mnt: no rootfs bind came back
    return inside, {name: _group(host[path]) for name, path in (("bundle", b), ("mnt", f"{b}/rootfs/mnt"),
                                                                 ("volume", v))}


def _optional_fields(mountinfo: str) -> dict[str, list[str]]:
    return {fields[4]: fields[6:fields.index("-")] for fields in map(str.split, mountinfo.splitlines())}


def _group(fields: list[str]) -> str:
    return next(f.split(":")[1] for f in fields if f.startswith("shared:"))


def linked(fields: list[str]) -> list[str]:
    return sorted(f for f in fields if f.startswith(("shared:", "master:")))


def config_with(propagation: str | None = None, mounts: list[dict] | None = None) -> dict:
    config = base_config(SHOW)
    if propagation:
        config["linux"]["rootfsPropagation"] = propagation
    config["mounts"] += mounts or []
    return config


@pytest.mark.parametrize("propagation", ["rprivate", "private", None])
def test_private_root_propagation_receives_nothing_from_the_host(bundle, propagation):
    inside, _ = run_under_shared_bundle(bundle, config_with(propagation))
    assert linked(inside["/"]) == [] and linked(inside["/mnt"]) == []  # recursive: the host's mount below too


@pytest.mark.parametrize("propagation", ["rslave", "slave"])
def test_slave_root_propagation_receives_from_the_hosts_peer_groups(bundle, propagation):
    inside, host = run_under_shared_bundle(bundle, config_with(propagation))
    assert linked(inside["/"]) == [f"master:{host['bundle']}"]
    assert linked(inside["/mnt"]) == [f"master:{host['mnt']}"]


def test_rshared_root_propagation_keeps_the_hosts_peer_groups_without_the_rootfs_reaching_the_host(bundle):
    """runc's rshared: the namespace's mounts stay in the host's peer groups (a host mount below the rootfs too);
    the rootfs bind does not come back to the host (its parent mount was made private); / is shared after pivot."""
    inside, host = run_under_shared_bundle(bundle, config_with("rshared"))
    root = linked(inside["/"])
    assert len(root) == 1 and root[0].startswith("shared:") and root[0] != f"shared:{host['bundle']}", root
    assert linked(inside["/mnt"]) == [f"shared:{host['mnt']}"]


def test_shared_root_propagation_is_a_new_peer_group_of_the_rootfs_alone(bundle):
    """config-linux.md's shared: the rootfs mount's own, not shared with the host; mounts below it stay private."""
    inside, host = run_under_shared_bundle(bundle, config_with("shared"))
    root = linked(inside["/"])
    assert len(root) == 1 and root[0].startswith("shared:") and root[0] != f"shared:{host['bundle']}", root
    assert linked(inside["/mnt"]) == []


@pytest.mark.parametrize("propagation", ["runbindable", "unbindable"])
def test_unbindable_root_propagation_makes_the_containers_root_unbindable(bundle, propagation):
    inside, _ = run_under_shared_bundle(bundle, config_with(propagation))
    assert "unbindable" in inside["/"] and linked(inside["/"]) == []
    assert "unbindable" not in inside["/proc"]  # the rootfs alone: read-only and masked paths are binds below it


@pytest.mark.parametrize("root, option, expect", [
    ("rshared", "rshared", ["shared:{volume}"]), ("rslave", "rslave", ["master:{volume}"]),
    ("rslave", "rshared", ["master:{volume}", "shared:"]), ("rprivate", "rprivate", []),
    ("rshared", "shared", ["shared:{volume}"]), ("rslave", "slave", ["master:{volume}"]),
    ("rshared", "rprivate", ["shared:"])])  # / made rshared after pivot_root covers it (as runc 1.2): a new group
def test_bind_mount_propagation_options_as_docker_writes_them(bundle, tmp_path, root, option, expect):
    """Docker sets rootfsPropagation to rshared/rslave when a bind asks for it: the volume then keeps (shared) or
    follows (slave) its host peer group."""
    volume = tmp_path / "volume"
    volume.mkdir()
    bind = {"destination": "/vol", "type": "bind", "source": str(volume), "options": ["rbind", option]}
    inside, host = run_under_shared_bundle(bundle, config_with(root, [bind]), volume)
    host_group = f"shared:{host['volume']}"
    got = [f if f.startswith("master:") or f == host_group else "shared:" for f in linked(inside["/vol"])]
    assert got == sorted(e.format(**host) for e in expect), inside["/vol"]


def _plan(bundle, config: dict) -> dict:
    bundle.write(config)
    return inputs.load(str(bundle.config_path)).plan


def _shared_hits(bundle, config: dict) -> list:
    bundle.write(config)
    report = audit(inputs.load(str(bundle.config_path)), profiles.builtin("baseline"))
    return [f for f in report.findings if f.control == "mounts.shared-propagation"]


def test_plan_listing_shows_recursive_root_propagation(bundle):
    bundle.write(config_with("rshared"))
    listing = subprocess.run([sys.executable, "-m", "mrunc", "compile", str(bundle.config_path), "--format", "text"],
                             capture_output=True, text=True, env={"PYTHONPATH": str(REPO)}, check=True).stdout
    root = [line for line in listing.splitlines() if "/linux/rootfsPropagation" in line]
    assert len(root) == 3 and "'MS_SHARED', 'MS_REC'" in root[0] and "mount_parent_private" in root[1], root


def test_audit_and_diff_flag_shared_propagation(bundle):
    hits = _shared_hits(bundle, config_with("rshared"))
    assert [(h.pointer, h.severity) for h in hits] == [("/linux/rootfsPropagation", "medium")]
    assert not _shared_hits(bundle, config_with("rprivate")) and not _shared_hits(bundle, config_with("rslave"))
    private, slave, shared = (_plan(bundle, config_with(p)) for p in ("rprivate", "rslave", "rshared"))
    assert _label(diff(private, shared), "/ propagation") == "raising"
    assert _label(diff(private, slave), "/ propagation") == "raising"
    assert _label(diff(shared, private), "/ propagation") == "lowering"


def _label(changes: list, key: str) -> str:
    return next(c.label for c in changes if c.key.startswith(key))


def test_audit_and_diff_flag_a_bind_mount_made_rshared(bundle):
    (bundle.path / "vol").mkdir()

    def volume(option: str) -> dict:
        return {"destination": "/vol", "type": "bind", "source": str(bundle.path / "vol"),
                "options": ["rbind", option]}

    hits = _shared_hits(bundle, config_with(mounts=[volume("rshared")]))
    assert [(h.pointer, h.severity) for h in hits] == [(f"/mounts/{len(base_config([])['mounts'])}", "high")]
    assert not _shared_hits(bundle, config_with(mounts=[volume("rslave")]))
    private, slave, shared = (_plan(bundle, config_with(mounts=[volume(o)])) for o in ("rprivate", "rslave", "rshared"))
    assert _label(diff(slave, shared), "mount /vol") == "raising"
    assert _label(diff(private, slave), "mount /vol") == "raising"
    assert _label(diff(shared, private), "mount /vol") == "lowering"
