"""Issue 18: a damaged or foreign state directory, as an operator meets one after a crash, a full disk, a hand edit,
or in a state root shared with runc. Every command that reads state treats it as bad input: `list` warns once per
bad entry (naming the directory and what is wrong) and lists the rest, the others fail with one line, and
`delete --force` removes what it can still identify. A fuzz test mutates state.json and plan.json of real created
containers and runs every lifecycle command against them.

Examples: MRUNC_FUZZ_STATE_EXAMPLES (default 2 per kind of damage and file, 28 in all; each creates a real container
and runs 14 commands)."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import base_config
from tests.lifecycle_helpers import Lifecycle

EXAMPLES = int(os.environ.get("MRUNC_FUZZ_STATE_EXAMPLES", "2"))
# (what the command is, its arguments after --root ROOT); ID is the damaged container's
COMMANDS = [["list"], ["list", "-q"], ["list", "--format", "json"], ["state", "ID"], ["ps", "ID"],
            ["pause", "ID"], ["resume", "ID"], ["kill", "ID", "TERM"], ["start", "ID"], ["exec", "ID", "--", "true"],
            ["update", "ID", "--pids-limit", "100"], ["delete", "ID"]]
RUNC_STATE = {"id": "c1", "init_process_pid": 4242, "init_process_start": 1234, "created": "2026-01-01T00:00:00Z",
              "config": {"rootfs": "/x", "labels": ["bundle=/x"]}, "rootless": False,
              "cgroup_paths": {"pids": "/sys/fs/cgroup/pids/c1"}, "namespace_paths": {}, "external_descriptors": []}


class Damaged:
    """A state root holding a bystander container and, per case, a victim whose files a test damages."""

    def __init__(self, bundle, tmp_path: Path) -> None:
        self.lc = Lifecycle(bundle, tmp_path)
        self.root = bundle.state_root
        self.marker = f"MRUNC_TEST_STATE={uuid.uuid4().hex}"
        self.config = base_config(["sleep", "1000"])
        self.config["process"]["env"].append(self.marker)
        self.bundle = bundle
        self.outside = tmp_path / "outside.json"  # a file a symlink in the state dir points at: never touched
        self.inits: dict[str, int] = {}

    def create(self, container_id: str) -> dict:
        config = json.loads(json.dumps(self.config))
        config["linux"]["cgroupsPath"] = f"{self.bundle.cgroup}-{container_id}"
        config["process"]["env"].append(f"{self.marker}-{container_id}")
        result = self.lc.create(config, container_id=container_id)
        assert result.returncode == 0, self.lc.output.read_text()
        self.inits[container_id] = json.loads((self.root / container_id / "state.json").read_text())["pid"]
        return json.loads((self.root / container_id / "plan.json").read_text())

    def run(self, *args: str) -> subprocess.CompletedProcess:
        result = self.lc(*args, timeout=60)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        return result

    def processes(self, container_id: str) -> list[int]:
        """The container's live processes: its init (before start its environment is still mrunc's), and any
        process whose environment holds the container's marker (init after start, exec'd ones)."""
        marker = f"{self.marker}-{container_id}\0".encode()
        found = {self.inits[container_id]} if _alive(self.inits[container_id]) else set()
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and marker in (proc / "environ").read_bytes() and _alive(int(proc.name)):
                    found.add(int(proc.name))
            except OSError:
                continue
        return sorted(found)

    def cgroups(self, container_id: str) -> list[str]:
        return [str(p) for p in Path("/sys/fs/cgroup").glob(f"*{self.bundle.cgroup}-{container_id}")]

    def cleanup(self) -> None:
        for name in os.listdir(self.root) if self.root.exists() else []:
            self.lc("delete", "--force", name)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture
def damaged(bundle, tmp_path):
    d = Damaged(bundle, tmp_path)
    yield d
    d.cleanup()


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("mrunc: "), result.stderr
    return lines[0]


def run_every_command(d: Damaged, victim: str, bystander: str) -> None:
    """Every state-reading command on the victim: never a traceback, list lists the bystander and warns about the
    victim at most once, the others fail in one line or do their job."""
    victim_dir = str(d.root / victim)
    for command in COMMANDS:
        result = d.run(*[victim if a == "ID" else a for a in command])
        if command[0] == "list":
            assert result.returncode == 0, result.stderr
            assert sum(victim_dir in line for line in result.stderr.splitlines()) <= 1, result.stderr
            listed = json.loads(result.stdout) if "json" in command else None
            assert bystander in (result.stdout if listed is None else [c["id"] for c in listed])
        elif result.returncode != 0:
            one_line_error(result)


def bystander_untouched(d: Damaged, bystander: str, state_before: dict) -> None:
    assert d.lc.state(bystander) == state_before
    assert d.cgroups(bystander) and d.processes(bystander) == [state_before["pid"]]


# --- the operator's cases ---

def test_list_warns_once_per_bad_entry_and_lists_the_rest(damaged):
    d = damaged
    d.create("good")
    d.create("cut")
    cut = d.root / "cut" / "state.json"
    cut.write_text(cut.read_text()[:40])
    (d.root / "foreign").mkdir()
    (d.root / "foreign" / "state.json").write_text(json.dumps(RUNC_STATE))
    (d.root / "nostate").mkdir()  # a create or delete that died part way
    (d.root / "unreadable" / "state.json").mkdir(parents=True)
    (d.root / "not-a-dir").write_text("")  # files in the root are not containers: no warning, as runc
    for args in (["list"], ["list", "-q"], ["list", "--format", "json"]):
        result = d.run(*args)
        assert result.returncode == 0
        warnings = result.stderr.splitlines()
        assert len(warnings) == 4, result.stderr
        assert f"mrunc: warning: container 'cut': {cut}: not valid JSON" in warnings[0]
        assert f"container 'foreign': {d.root}/foreign/state.json: written by another runtime (runc's keys: " \
               "init_process_pid" in warnings[1]
        assert f"container 'nostate': {d.root}/nostate/state.json: missing" in warnings[2]
        assert f"container 'unreadable': {d.root}/unreadable/state.json: not a regular file" in warnings[3]
        if "json" in args:
            ids = [c["id"] for c in json.loads(result.stdout)]
        else:  # -q: one id a line; the table: a header, then a row per container, its id first
            ids = [line.split()[0] for line in result.stdout.splitlines()[0 if "-q" in args else 1:]]
        assert ids == ["good"]


def test_state_and_the_other_commands_fail_in_one_line_on_invalid_json(damaged):
    d = damaged
    d.create("c1")
    (d.root / "c1" / "state.json").write_text('{"ociVersion": "1.0.2", "id": "c1", "pid": 12')
    for command in COMMANDS[3:]:
        line = one_line_error(d.run(*[a.replace("ID", "c1") for a in command]))
        assert f"container 'c1': {d.root}/c1/state.json: not valid JSON (cut short or edited by hand?)" in line
    assert "`mrunc delete --force c1` removes what can still be identified" in line  # delete's hint
    assert d.processes("c1") and d.cgroups("c1")  # without --force nothing was touched


def test_delete_force_of_a_container_with_invalid_json_removes_its_processes_cgroups_and_dir(damaged):
    d = damaged
    d.create("c1")
    (d.root / "c1" / "state.json").write_text("{not json")
    result = d.run("delete", "--force", "c1")
    assert result.returncode == 0, result.stderr
    assert "warning: container 'c1'" in result.stderr and "removing what can still be identified" in result.stderr
    assert not (d.root / "c1").exists() and not d.cgroups("c1") and not d.processes("c1")


def test_delete_force_without_a_readable_plan_says_what_it_could_not_do(damaged):
    d = damaged
    plan = d.create("c1")
    for name in ("state.json", "plan.json"):
        (d.root / "c1" / name).write_text("")
    result = d.run("delete", "--force", "c1")
    assert result.returncode == 1 and not (d.root / "c1").exists()
    assert "could not find its processes and cgroups (neither plan.json nor state.json is readable)" in result.stderr
    # what it could not identify is still there: clean it up from the plan we kept
    (d.root / "c1").mkdir()
    (d.root / "c1" / "plan.json").write_text(json.dumps(plan))
    assert d.run("delete", "--force", "c1").returncode == 0
    assert not d.processes("c1") and not d.cgroups("c1")


def test_a_symlink_in_place_of_state_json_is_not_followed(damaged):
    d = damaged
    d.create("c1")
    state = d.root / "c1" / "state.json"
    d.outside.write_text(state.read_text())  # a valid-looking state, outside the state root
    state.unlink()
    state.symlink_to(d.outside)
    line = one_line_error(d.run("state", "c1"))
    assert f"{state}: a symlink (to '{d.outside}'), not mrunc's file; not following it" in line
    assert d.run("delete", "--force", "c1").returncode == 0
    assert d.outside.exists() and not (d.root / "c1").exists() and not d.processes("c1")


def test_a_state_pointing_delete_at_a_cgroup_hierarchy_root_is_refused(damaged):
    """A hand edit that names a hierarchy's root as the container's cgroup must not make kill or delete kill
    everything on the host: it is damage, and delete --force goes by the plan's cgroups."""
    d = damaged
    d.create("c1")
    path = d.root / "c1" / "state.json"
    state = json.loads(path.read_text())
    root_cgroup = "/sys/fs/cgroup/pids" if Path("/sys/fs/cgroup/pids").is_dir() else "/sys/fs/cgroup/"
    state["cgroups"] = [root_cgroup.rstrip("/") if root_cgroup != "/sys/fs/cgroup/" else "/sys/fs/cgroup/x/.."]
    path.write_text(json.dumps(state))
    line = one_line_error(d.run("kill", "--all", "c1", "KILL"))
    assert "'cgroups'[0]:" in line
    assert d.run("delete", "--force", "c1").returncode == 0
    assert not d.processes("c1") and not d.cgroups("c1")


# --- fuzz: mutated state.json and plan.json of real created containers ---

JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=4)


def _paths(doc: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc[:20]):  # plans have hundreds of ops: the first ones are enough to reach
            found += _paths(value, (*path, i))
    return found


def _set(doc: object, path: tuple, value: object, delete: bool = False) -> object:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


KINDS = ("truncate", "retype", "drop-key", "garbage", "symlink", "empty", "directory")


@st.composite
def mutations(draw, kind: str):
    """(kind, function from the file's text to its damaged text; None for symlink and directory)"""
    if kind == "truncate":
        fraction = draw(st.floats(0, 0.99))
        return kind, lambda text: text[:int(len(text) * fraction)]
    if kind == "garbage":
        junk = draw(st.binary(min_size=1, max_size=64))
        return kind, lambda text: junk
    if kind == "empty":
        return kind, lambda text: ""
    if kind in ("symlink", "directory"):
        return kind, None
    pick, value = draw(st.integers(0, 10**6)), draw(JSON)

    def change(text: str) -> str:
        doc = json.loads(text)
        paths = [p for p in _paths(doc) if p] or [()]
        path = paths[pick % len(paths)]
        return json.dumps(_set(doc, path, value, delete=kind == "drop-key" and bool(path)))
    return kind, change


def _damage(d: Damaged, path: Path, mutation) -> None:
    kind, change = mutation
    if kind == "symlink":
        d.outside.write_text(path.read_text())
        path.unlink()
        path.symlink_to(d.outside)
        return
    if kind == "directory":  # unreadable as a file
        path.unlink()
        path.mkdir()
        return
    text = change(path.read_text())
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def outside_the_state_root(d: Damaged) -> dict[str, tuple[int, int]]:
    """Every file of the test's tmp dir but the state root and the containers' output: path -> (size, mtime)."""
    top = d.lc.output.parent
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == top and d.root.name in dirnames:
            dirnames.remove(d.root.name)
        for name in filenames:
            path = Path(dirpath, name)
            if path != d.lc.output:
                st = path.lstat()
                found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


def _fuzz(d: Damaged, name: str, mutation) -> None:
    victim = f"v{uuid.uuid4().hex[:8]}"
    plan = d.create(victim)
    _damage(d, d.root / victim / name, mutation)
    outside = outside_the_state_root(d)  # the bundle, and the file a symlink mutation points at
    run_every_command(d, victim, "bystander")
    bystander_untouched(d, "bystander", d.bystander_state)
    result = d.run("delete", "--force", victim)
    assert outside_the_state_root(d) == outside
    if name == "state.json":  # the plan is intact: nothing may be left
        assert result.returncode == 0, result.stderr
        assert not (d.root / victim).exists() and not d.cgroups(victim)
        assert not d.processes(victim)
    else:  # whatever --force could not identify, the pristine plan finds
        assert not (d.root / victim).exists() or result.returncode == 1
        if (d.root / victim).exists():
            shutil.rmtree(d.root / victim)
        (d.root / victim).mkdir()
        (d.root / victim / "plan.json").write_text(json.dumps(plan))
        assert d.run("delete", "--force", victim).returncode == 0
        assert not d.cgroups(victim) and not d.processes(victim)
    bystander_untouched(d, "bystander", d.bystander_state)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                derandomize=os.environ.get("MRUNC_HYPOTHESIS_RANDOM") != "1")


@pytest.fixture
def with_bystander(damaged):
    damaged.create("bystander")
    damaged.bystander_state = damaged.lc.state("bystander")
    return damaged


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["state.json", "plan.json"])
def test_fuzzed_state_files_never_crash_a_command_and_delete_force_cleans_up(with_bystander, name, kind):
    @FUZZ
    @given(mutations(kind))
    def check(mutation):
        _fuzz(with_bystander, name, mutation)

    check()


# --- a state root shared with runc ---

@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_list_of_a_root_shared_with_runc_lists_mrunc_containers_and_warns_about_runcs(damaged, tmp_path):
    d = damaged
    d.create("ours")
    runc_bundle = tmp_path / "runc-bundle"
    shutil.copytree(d.bundle.path / "rootfs", runc_bundle / "rootfs", symlinks=True)
    config = base_config(["sleep", "1000"])
    config["linux"]["cgroupsPath"] = f"{d.bundle.cgroup}-theirs"
    (runc_bundle / "config.json").write_text(json.dumps(config))
    with open(tmp_path / "runc-output", "wb") as out:
        created = subprocess.run(["runc", "--root", str(d.root), "create", "--bundle", str(runc_bundle), "theirs"],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
    try:
        assert created.returncode == 0, (tmp_path / "runc-output").read_text()
        for args in (["list"], ["list", "-q"], ["list", "--format", "json"]):
            result = d.run(*args)
            assert result.returncode == 0
            assert result.stderr.splitlines() == [
                f"mrunc: warning: container 'theirs': {d.root}/theirs/state.json: written by another runtime "
                "(runc's keys: init_process_pid, init_process_start, cgroup_paths, namespace_paths, config), "
                "not by mrunc; skipped"]
            ids = [c["id"] for c in json.loads(result.stdout)] if "json" in args else result.stdout.split()
            assert "ours" in ids and "theirs" not in ids
        assert "written by another runtime" in one_line_error(d.run("state", "theirs"))
        refused = one_line_error(d.run("delete", "--force", "theirs"))
        assert "delete it with the runtime that made it; nothing removed" in refused
        listed = subprocess.run(["runc", "--root", str(d.root), "list", "-q"], capture_output=True, text=True)
        assert "theirs" in listed.stdout.split()  # runc still sees its container
    finally:
        subprocess.run(["runc", "--root", str(d.root), "delete", "--force", "theirs"], capture_output=True)
    assert not d.cgroups("theirs")
