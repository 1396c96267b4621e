"""The canonical digest (mrunc/canonical.py), as properties over podman's own config (reference/configs): any order
of its mounts that keeps every nesting pair (a destination and one under it) in its order is one canonical digest,
though the plan's own digest changes; moving a mount before one its destination lies under is another digest.
The podman runs are in tests/test_podman.py, real containers on bundles (symlinks too) in tests/test_policy.py."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrunc import canonical
from mrunc.compiler.compile import compile_bytes, dumps
from mrunc.executor.plan import sha256_hex
from mrunc.tools.regen_plans import HOST_V1
from tests.conftest import REFERENCE

PODMAN = json.loads((REFERENCE / "configs" / "podman-run-netns.json").read_text())


def digests(mounts: list[dict]) -> tuple[str, str]:
    """(plan digest, canonical digest) of podman's config with these mounts."""
    plan = compile_bytes(json.dumps(dict(PODMAN, mounts=mounts)).encode(), "/b", "id", HOST_V1)
    return "sha256:" + sha256_hex(dumps(plan).encode()), canonical.digest(plan)


def nested(a: dict, b: dict) -> bool:
    x, y = a["destination"].rstrip("/") + "/", b["destination"].rstrip("/") + "/"
    return x.startswith(y) or y.startswith(x)


ORIGINAL = digests(PODMAN["mounts"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, len(PODMAN["mounts"]) - 2), max_size=40))
def test_orders_that_keep_every_nesting_pair_are_one_canonical_digest(swaps):
    mounts = list(PODMAN["mounts"])
    for i in swaps:  # adjacent swaps of mounts that do not nest: they reach every such order
        if not nested(mounts[i], mounts[i + 1]):
            mounts[i], mounts[i + 1] = mounts[i + 1], mounts[i]
    plan_digest, canonical_digest = digests(mounts)
    assert canonical_digest == ORIGINAL[1]
    assert (plan_digest == ORIGINAL[0]) == (mounts == PODMAN["mounts"])


NESTING = [(i, j) for j in range(len(PODMAN["mounts"])) for i in range(j)
           if nested(PODMAN["mounts"][i], PODMAN["mounts"][j])]


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(NESTING))
def test_a_mount_moved_before_the_one_it_lies_under_is_another_canonical_digest(pair):
    i, j = pair
    mounts = list(PODMAN["mounts"])
    mounts.insert(i, mounts.pop(j))  # /dev/shm before /dev, say
    assert digests(mounts)[1] != ORIGINAL[1]


ROOT = PODMAN["root"]["path"]


@pytest.mark.parametrize("mount", [
    {"destination": "/host", "type": "bind", "source": "/", "options": ["rbind"]},
    {"destination": "/merged", "type": "overlay", "source": "overlay", "options": [f"lowerdir={ROOT}/srv"]},
], ids=["recursive-bind-of-a-directory-holding-the-rootfs", "overlay-lowerdir-in-the-rootfs"])
def test_a_mount_that_sees_the_rootfs_mounts_keeps_its_place_in_the_canonical_digest(mount):
    """The bind takes along (the overlay stacks) whatever the mounts before it put in the rootfs, so its order is
    what the container gets, though its destination nests with none."""
    assert digests(PODMAN["mounts"] + [mount])[1] != digests([mount] + PODMAN["mounts"])[1]


def test_a_bind_whose_source_is_a_symlink_into_the_rootfs_keeps_its_place_in_the_canonical_digest(tmp_path):
    (tmp_path / "rootfs" / "srv").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "rootfs" / "srv")
    config = dict(PODMAN, root={"path": str(tmp_path / "rootfs")})
    tmpfs = {"destination": "/srv", "type": "tmpfs", "source": "tmpfs", "options": []}
    bind = {"destination": "/opt", "type": "bind", "source": str(tmp_path / "link"), "options": ["rbind"]}

    def canonical_digest(mounts: list[dict]) -> str:
        return canonical.digest(compile_bytes(json.dumps(dict(config, mounts=mounts)).encode(), "/b", "id", HOST_V1))

    assert canonical_digest([tmpfs, bind]) != canonical_digest([bind, tmpfs])


def test_a_note_on_a_mount_does_not_tie_the_canonical_digest_to_the_mount_order():
    """A note names its mount's index (`/mounts/N/options`), which podman's order moves: the canonical form says
    `/mounts` there, as the moved ops' `src` do."""
    noted = {"destination": "/opt/noted", "type": "bind", "source": "/srv", "options": ["rbind", "tmpcopyup"]}
    first, last = [noted] + PODMAN["mounts"], PODMAN["mounts"] + [noted]
    assert digests(first)[0] != digests(last)[0]
    assert digests(first)[1] == digests(last)[1]
