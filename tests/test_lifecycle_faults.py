"""Faults and load on the lifecycle commands: `create` SIGKILLed at each op (MRUNC_FAULT_AT=N:kill, run.py), a
full disk under the state dir, and many containers created, started, exec'd into, killed and deleted at once with ids
colliding on purpose. Afterwards `delete --force` (or the command's own cleanup) leaves no process, cgroup or
state dir, and `list` tells the truth throughout.

Sizes: MRUNC_KILL_EVERY_OP=1 kills at every op (default: the first op of each kind and every runtime or
protocol op but repeated cgroup_writes; each cgroup_mkdir leaves a different half-made set);
MRUNC_LOAD_CONTAINERS (default 10; the issue's 50 with MRUNC_LOAD_CONTAINERS=50)."""

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO, base_config, mrunc
from tests.hardened import hardened_config, needs_hardened

KILL_EVERY_OP = os.environ.get("MRUNC_KILL_EVERY_OP") == "1"
LOAD = int(os.environ.get("MRUNC_LOAD_CONTAINERS", "10"))
WORKERS = 2


class Runtime:
    """mrunc with one state root; per-container bundle dirs sharing one rootfs, each with its own cgroup."""

    def __init__(self, bundle) -> None:
        self.bundle = bundle
        self.root = str(bundle.state_root)

    def __call__(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return mrunc("--root", self.root, *args, env=env)

    def create(self, config: dict, container_id: str, env: dict | None = None,
               bundle: str | None = None) -> subprocess.CompletedProcess:
        """create with stderr to a file: the container keeps create's stdio, so a pipe would never close.
        `bundle`: the bundle dir's name (default the id), for attempts at one id with configs of their own."""
        directory = self.bundle.path.parent / f"bundle-{bundle or container_id}"
        directory.mkdir(exist_ok=True)
        config = dict(config, root={"path": str(self.bundle.path / "rootfs"), "readonly": True},
                      linux=dict(config["linux"], cgroupsPath=f"{self.bundle.cgroup}-{container_id}"))
        (directory / "config.json").write_text(json.dumps(config))
        command = ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "mrunc", "--root", self.root,
                   "create", "--bundle", str(directory), container_id]
        with tempfile.TemporaryFile("w+") as err:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    text=True, timeout=60, env=dict(os.environ, **(env or {}), PYTHONPATH=str(REPO)))
            err.seek(0)
            result.stderr = err.read()
        return result

    def listed(self) -> list[dict]:
        result = self("list", "--format", "json")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        return json.loads(result.stdout or "[]")

    def leftovers(self, container_id: str) -> list[str]:
        """What a deleted container left: its state dir, cgroups, processes started for it."""
        found = []
        if Path(self.root, container_id).exists():
            found.append("state dir")
        found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*{self.bundle.cgroup}-{container_id}")]
        marker = f"bundle-{container_id}".encode()
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name}")
            except OSError:
                pass
        return found


@pytest.fixture
def runtime(userns_bundle):
    rt = Runtime(userns_bundle)
    yield rt
    for container in rt.listed():
        rt("delete", "--force", container["id"])


def _kill_points(ops: list[dict]) -> list[int]:
    if KILL_EVERY_OP:
        return list(range(len(ops)))
    seen, points = set(), []
    for i, o in enumerate(ops):
        repeated_write = o["op"] == "cgroup_write" and o["op"] in seen  # changes nothing delete must undo
        if o["op"] not in seen or o["proc"] == "runtime" and not repeated_write or o["op"] in ("fork", "fork_init"):
            points.append(i)
        seen.add(o["op"])
    return points


@needs_hardened
def test_create_killed_at_any_op_is_cleaned_by_delete_force(runtime):
    config = hardened_config(["sleep", "100"])
    assert runtime.create(config, "probe").returncode == 0
    ops = json.loads(Path(runtime.root, "probe", "plan.json").read_text())["ops"]
    assert runtime("delete", "--force", "probe").returncode == 0
    waits = next(i for i, o in enumerate(ops) if o["op"] == "wait_start")

    def kill_at(i: int) -> list[str]:
        container_id = f"k{i}"
        env = {"MRUNC_FAULT_AT": f"{i}:kill"}
        killed = runtime.create(config, container_id, env=env)
        problems = [killed.stderr] if "Traceback" in killed.stderr else []
        if i < waits:
            problems += [] if killed.returncode != 0 else ["create succeeded"]
        else:  # init runs these after start: the kill lands then
            started = runtime("start", container_id, env=env)
            problems += [started.stderr] if "Traceback" in started.stderr else []
        if any(c["id"] == container_id and c["status"] == "running" for c in runtime.listed()):
            problems.append("listed as running")
        deleted = runtime("delete", "--force", container_id)
        if deleted.returncode != 0:
            problems.append(f"delete --force: {deleted.stderr.strip()}")
        problems += runtime.leftovers(container_id)
        if any(c["id"] == container_id for c in runtime.listed()):
            problems.append("still listed after delete")
        return [f"op {i} ({ops[i]['proc']} {ops[i]['op']}): {p}" for p in problems]

    with ThreadPoolExecutor(WORKERS) as pool:
        problems = [p for found in pool.map(kill_at, _kill_points(ops)) for p in found]
    assert not problems, "\n".join(problems)


def test_a_full_disk_under_the_state_dir_fails_cleanly(bundle):
    """--root on a tiny tmpfs, filled: create must say so, and leave no cgroup, process or half state."""
    state = bundle.path.parent / "full"
    state.mkdir()
    bundle.write(base_config(["sleep", "100"]))
    script = (f"mount -t tmpfs -o size=16k tmpfs {state} && mkdir {state}/root && "
              f"(dd if=/dev/zero of={state}/fill bs=4k count=8 2>/dev/null; true) && "
              f"{sys.executable} -m mrunc --root {state}/root create --bundle {bundle.path} {bundle.id} </dev/null "
              f">/dev/null; echo status=$?; ls {state}/root; {sys.executable} -m mrunc --root {state}/root list -q")
    result = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert "status=1" in result.stdout and "Traceback" not in result.stderr, result.stderr
    assert "No space left on device" in result.stderr, result.stderr
    assert result.stdout.split() == ["status=1"]  # no state dir left, and list shows nothing
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


@pytest.mark.slow
@needs_hardened
def test_many_containers_with_colliding_ids_under_load(runtime):
    """LOAD containers over LOAD // 2 ids, each created, started, exec'd into, killed and deleted, all at once.
    Each attempt has a hostname of its own, which its exec must see: it ran in that container, no other."""
    config = hardened_config(["sleep", "100"])
    ids = [f"c{i % max(1, LOAD // 2)}" for i in range(LOAD)]

    def lifecycle(attempt: int, container_id: str) -> tuple[str, list[str]]:
        hostname = f"h{attempt}"
        created = runtime.create(dict(config, hostname=hostname), container_id, bundle=f"{container_id}-{attempt}")
        if created.returncode != 0:
            ok = "already exists" in created.stderr and "Traceback" not in created.stderr
            return "refused", [] if ok else [f"{container_id}: create: {created.stderr.strip()}"]
        started = runtime("start", container_id)
        execed = runtime("exec", container_id, "--", "hostname")
        problems = [f"{container_id}: {step}: {r.stderr.strip()}" for step, r in (
            ("start", started), ("exec", execed),
            ("kill", runtime("kill", container_id, "KILL")),
            ("delete", runtime("delete", "--force", container_id))) if r.returncode != 0]
        if execed.returncode == 0 and execed.stdout != f"{hostname}\n":
            problems.append(f"{container_id}: exec of attempt {attempt} ran in {execed.stdout.strip()!r}")
        return "ran", problems

    with ThreadPoolExecutor(max(2, LOAD // 2)) as pool:
        futures = [pool.submit(lifecycle, attempt, container_id) for attempt, container_id in enumerate(ids)]
        listings = []
        while not all(f.done() for f in futures):
            listings.append(runtime.listed())  # must parse, and never show an id twice
        results = [f.result() for f in futures]
    problems = [p for _, found in results for p in found]
    assert not problems, "\n".join(problems)
    for listing in listings:
        assert len({c["id"] for c in listing}) == len(listing), listing
    assert sum(kind == "ran" for kind, _ in results) >= len(set(ids))
    assert runtime.listed() == []
    assert not [left for container_id in set(ids) for left in runtime.leftovers(container_id)]
