"""The seccomp filter cache (compiler/seccomp_cache.py): a warm cache gives the plan a cold one does, byte for
byte, without importing pyseccomp; every entry or directory it cannot trust is refused, the filter compiled
as without a cache and the plan says why; a refused entry is replaced by a good one where the directory is
trusted. Each test has its own cache directory (MRUNC_SECCOMP_CACHE), so nothing is left on the host."""

import errno
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mrunc.compiler import lower_seccomp, seccomp_cache
from mrunc.compiler.compile import compile_bytes, dumps
from mrunc.tools.regen_plans import GOLDENS, PLANS
from tests.conftest import REPO, base_config, run_config

PODMAN = next(g for g in GOLDENS if g.name == "podman-run-netns")
PROFILE = json.loads(PODMAN.config.read_bytes())["linux"]["seccomp"]
GOLDEN_PLAN = (PLANS / f"{PODMAN.name}.json").read_text()
OTHER_UID = 65534  # nobody


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory of this test's, root's and 0700 as mrunc makes one."""
    if os.geteuid() != 0:
        pytest.skip("the cache is root's: compile runs it as root only")
    where = tmp_path / "seccomp-cache"
    monkeypatch.setenv(seccomp_cache.ENV, str(where))
    return where


@pytest.fixture
def libseccomp_calls(monkeypatch) -> list[dict]:
    """The profiles compiled by libseccomp in this process (a hit compiles none)."""
    calls: list[dict] = []
    compile_filter = lower_seccomp.compile_filter
    monkeypatch.setattr(lower_seccomp, "compile_filter", lambda s: calls.append(s) or compile_filter(s))
    return calls


def _compile_podman() -> str:
    return dumps(compile_bytes(PODMAN.config.read_bytes(), PODMAN.bundle, PODMAN.name, PODMAN.host))


def _entry(cache: Path) -> Path:
    return cache / seccomp_cache.key(PROFILE)


def _warm(cache: Path) -> Path:
    assert _compile_podman() == GOLDEN_PLAN
    return _entry(cache)


def test_cold_compile_stores_the_filter_root_only_0600(cache, libseccomp_calls):
    entry = _warm(cache)
    assert len(libseccomp_calls) == 1
    assert entry.stat().st_mode & 0o7777 == 0o600 and entry.stat().st_uid == 0
    assert cache.stat().st_mode & 0o7777 == 0o700
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temporary file left


def test_warm_cache_gives_the_byte_identical_plan_without_libseccomp(cache, libseccomp_calls):
    _warm(cache)
    assert _compile_podman() == GOLDEN_PLAN
    assert len(libseccomp_calls) == 1, "the warm compile ran libseccomp again"


def test_warm_hit_imports_neither_pyseccomp_nor_json_re_or_jsonschema(cache):
    """A warm compile of podman's config: none of what made compile slow (ms each) is imported; a cold one
    pyseccomp, but not ctypes.util (subprocess, shutil, tempfile)."""
    # As the launcher runs it: no site (whose .pth files import what they like), site-packages last on the path.
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.append({sysconfig.get_paths()['purelib']!r}); "
            "from mrunc.compiler.compile import compile_bytes, dumps; "
            f"dumps(compile_bytes(open({str(PODMAN.config)!r}, 'rb').read(), '/b', 'x', {PODMAN.host!r})); "
            "print(sorted({'pyseccomp', 'jsonschema', 'json', 're', 'enum', 'typing', 'subprocess', 'ctypes.util'}"
            " & set(sys.modules)))")
    run = [sys.executable, "-I", "-S", "-c", code]
    cold = subprocess.run(run, cwd=REPO, capture_output=True, text=True, check=True).stdout
    warm = subprocess.run(run, cwd=REPO, capture_output=True, text=True, check=True).stdout
    # cold: pyseccomp (its typing imports re and enum), with a stand-in ctypes.util (lower_seccomp._import_pyseccomp)
    assert (cold, warm) == ("['enum', 'pyseccomp', 're', 'typing']\n", "[]\n")


def test_cache_off_writes_nothing(cache, monkeypatch, libseccomp_calls):
    monkeypatch.setenv(seccomp_cache.ENV, "off")
    assert _compile_podman() == GOLDEN_PLAN
    assert _compile_podman() == GOLDEN_PLAN
    assert len(libseccomp_calls) == 2 and not cache.exists()


def test_key_covers_the_section_the_architecture_and_libseccomps_version():
    keys = {seccomp_cache.key(PROFILE), seccomp_cache.key({**PROFILE, "defaultErrnoRet": 1}),
            seccomp_cache.key(PROFILE, arch="aarch64"), seccomp_cache.key(PROFILE, libseccomp="2.5.3")}
    assert len(keys) == 4
    reordered = json.loads(json.dumps(PROFILE, sort_keys=True))  # the same section, keys in another order
    assert seccomp_cache.key(reordered) == seccomp_cache.key(PROFILE)


def test_libseccomp_version_is_the_one_pyseccomp_loads():
    import ctypes

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    version = lower_seccomp._import_pyseccomp()._libseccomp.seccomp_version
    version.restype = ctypes.POINTER(Version)
    v = version().contents
    assert seccomp_cache.libseccomp_version() == f"{v.major}.{v.minor}.{v.micro}"


# --- refusals: each one compiles, notes why, and (where the directory is trusted) repairs the entry ------------

def _chown_file(cache: Path) -> None:
    os.chown(_entry(cache), OTHER_UID, -1)


def _chmod_file_group_readable(cache: Path) -> None:
    _entry(cache).chmod(0o640)


def _chmod_file_world_writable(cache: Path) -> None:
    _entry(cache).chmod(0o602)


def _symlink_file(cache: Path) -> None:
    elsewhere = cache.parent / "elsewhere"
    _entry(cache).rename(elsewhere)
    _entry(cache).symlink_to(elsewhere)


def _alter_a_byte(cache: Path) -> None:
    data = bytearray(_entry(cache).read_bytes())
    data[-10] ^= 1
    _entry(cache).write_bytes(bytes(data))


def _truncate(cache: Path) -> None:
    data = _entry(cache).read_bytes()
    _entry(cache).write_bytes(data[:len(data) // 2])


def _another_entry(cache: Path) -> None:
    """A good entry of another profile, under this profile's name."""
    other = seccomp_cache.encode("0" * 64, {"bpf": "", "flags": [], "pfc": ""})
    _entry(cache).write_bytes(other)


def _chown_dir(cache: Path) -> None:
    os.chown(cache, OTHER_UID, -1)


def _chmod_dir_group_writable(cache: Path) -> None:
    cache.chmod(0o770)


def _symlink_dir(cache: Path) -> None:
    real = cache.parent / "real-cache"
    cache.rename(real)
    cache.symlink_to(real)


FILE_REFUSALS = {
    "file owned by another user": (_chown_file, "file owned by uid 65534, not root"),
    "file group readable": (_chmod_file_group_readable, "file mode 0640; allowed: 0600"),
    "file world writable": (_chmod_file_world_writable, "file mode 0602; allowed: 0600"),
    "file a symlink": (_symlink_file, "is a symlink"),
    "digest does not match": (_alter_a_byte, "content does not match its sha256 (truncated or altered)"),
    "file truncated": (_truncate, "content does not match its sha256 (truncated or altered)"),
    "entry of another profile": (_another_entry, "holds another entry"),
}
DIR_REFUSALS = {
    "directory owned by another user": (_chown_dir, "directory owned by uid 65534, not root"),
    "directory group writable": (_chmod_dir_group_writable, "directory mode 0770; allowed: writable by root alone"),
    "directory a symlink": (_symlink_dir, "directory is a symlink or not a directory"),
}


def _refused_plan(cache: Path, spoil, libseccomp_calls: list) -> dict:
    _warm(cache)
    spoil(cache)
    plan = compile_bytes(PODMAN.config.read_bytes(), PODMAN.bundle, PODMAN.name, PODMAN.host)
    assert len(libseccomp_calls) == 2, "a refused entry was used"
    return plan


def _as_golden(plan: dict, note: str) -> str:
    """The plan without the cache's note must be the golden: only the note differs."""
    assert note in plan["notes"], plan["notes"]
    return dumps({**plan, "notes": [n for n in plan["notes"] if n != note]})


@pytest.mark.parametrize("spoil, why", FILE_REFUSALS.values(), ids=FILE_REFUSALS.keys())
def test_untrusted_entry_is_refused_noted_compiled_and_replaced(cache, libseccomp_calls, spoil, why):
    plan = _refused_plan(cache, spoil, libseccomp_calls)
    note = f"/linux/seccomp: seccomp cache not used ({_entry(cache)}: {why}); compiled with libseccomp"
    assert _as_golden(plan, note) == GOLDEN_PLAN
    assert not _entry(cache).is_symlink() and _entry(cache).stat().st_mode & 0o7777 == 0o600
    assert _entry(cache).stat().st_uid == 0
    assert _compile_podman() == GOLDEN_PLAN and len(libseccomp_calls) == 2, "the replaced entry was not used"


@pytest.mark.parametrize("spoil, why", DIR_REFUSALS.values(), ids=DIR_REFUSALS.keys())
def test_untrusted_directory_is_refused_noted_compiled_and_left_alone(cache, libseccomp_calls, spoil, why):
    plan = _refused_plan(cache, spoil, libseccomp_calls)
    note = f"/linux/seccomp: seccomp cache not used ({_entry(cache)}: {why}); compiled with libseccomp"
    assert _as_golden(plan, note) == GOLDEN_PLAN
    seccomp_load = next(o["args"] for o in plan["ops"] if o["op"] == "seccomp_load")
    written = seccomp_cache.encode(_entry(cache).name, seccomp_load)
    assert [(p.name, p.read_bytes()) for p in cache.resolve().iterdir()] == [(_entry(cache).name, written)], \
        "something was written into a directory not trusted"


def test_fifo_in_place_of_an_entry_is_refused_without_blocking(cache, libseccomp_calls):
    def fifo(where: Path) -> None:
        _entry(where).unlink()
        os.mkfifo(_entry(where), 0o600)

    plan = _refused_plan(cache, fifo, libseccomp_calls)
    note = f"/linux/seccomp: seccomp cache not used ({_entry(cache)}: file is not a regular file); compiled with " \
           "libseccomp"
    assert _as_golden(plan, note) == GOLDEN_PLAN


def test_container_filter_from_a_warm_cache_is_enforced(bundle, cache):
    """Through `mrunc run` twice: the second run's filter comes from the cache, and works inside."""
    config = base_config(["sh", "-c", "mkdir /tmp/d 2>&1; echo still running"])
    config["root"]["readonly"] = False
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}]}
    entry = cache / seccomp_cache.key(config["linux"]["seccomp"])
    expected = ["mkdir: can't create directory '/tmp/d': Invalid cross-device link", "still running"]
    assert run_config(bundle, config).stdout.splitlines() == expected
    stored = entry.stat()
    warm = run_config(bundle, config)
    assert warm.stdout.splitlines() == expected, warm.stderr
    assert (entry.stat().st_ino, entry.stat().st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns), \
        "the warm run wrote the entry again: it was not a hit"
