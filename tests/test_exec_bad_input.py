"""Bad input to `mrunc exec ID`: a process document or flags it cannot honour is refused before anything runs,
with the field's pointer and what is allowed, exit status 1, no traceback, and the container running on."""

import json
import shutil
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrunc.compiler.compile_exec import compile_exec
from mrunc.compiler.errors import ConfigError
from mrunc.executor import plan as plans
from tests.conftest import REFERENCE, TEST_CGROUP_PARENT, Bundle, base_config
from tests.lifecycle_helpers import running
from tests.test_fuzz import BUNDLE, _mutate, _seed_plan, fuzz, fuzz_slow

LOOP = ["sh", "-c", "while true; do sleep 0.1; done"]
DEEP = 100_000


@pytest.fixture(scope="module")
def box(busybox_rootfs, tmp_path_factory):
    """One running container for every case (each case only fails to exec into it)."""
    top = tmp_path_factory.mktemp("exec-bad-input")
    shutil.copytree(busybox_rootfs, top / "bundle" / "rootfs", symlinks=True)
    bundle = Bundle(top / "bundle", top / "state", f"/{TEST_CGROUP_PARENT}/x{uuid.uuid4().hex[:10]}")
    with running(bundle, top, base_config(LOOP)) as lc:
        yield lc


def process(**fields) -> dict:
    return {"args": ["true"], "cwd": "/", **fields}


BAD_PROCESSES = [
    ("truncated", b'{"args": ["tr', "/: not valid JSON"),
    ("not-utf8", b'{"args": ["\xff"]}', "/: not UTF-8 text"),
    ("raw-nul", b'{"args": ["true"]\x00}', "/: contains a NUL byte"),
    ("deeply-nested", b'{"x": ' + b"[" * DEEP + b"]" * DEEP + b"}", "/: nested too deeply to be a process"),
    ("not-an-object", b"[]", "/: expected a JSON object"),
    ("nul-in-arg", process(args=["echo", "a\0b"]), "/args/1: got 'a\\x00b'; allowed: strings without NUL"),
    ("nul-in-env", process(env=["A=\0"]), "/env/0: got 'A=\\x00'; allowed: strings without NUL"),
    ("nul-in-cwd", process(cwd="/t\0mp"), "/cwd: got '/t\\x00mp'; allowed: strings without NUL"),
    ("cwd-relative", process(cwd="tmp"), "/cwd: got \"tmp\"; allowed: an absolute path"),
    ("uid-negative", process(user={"uid": -1, "gid": 0}), "/user/uid: got -1; allowed: a number, 0 or more"),
    ("uid-minus-one-unsigned", process(user={"uid": 2**32 - 1, "gid": 0}),
     "/user/uid: got 4294967295; allowed: 0 to 2147483647"),
    ("gid-huge", process(user={"uid": 0, "gid": 2**40}), "/user/gid: got 1099511627776; allowed: 0 to"),
    ("rlimit-absurd", process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 2**70, "hard": 2**70}]),
     "/rlimits/0/hard: got 1180591620717411303424; allowed: up to"),
    ("rlimit-soft-above-hard", process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 10}]),
     "/rlimits/0/soft: soft limit 100 is above hard limit 10"),
    ("rlimit-unknown", process(rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]), "/rlimits/0: got"),
    ("capability-unknown", process(capabilities={"bounding": ["CAP_NOPE"]}),
     "/capabilities/bounding/0: unknown capability 'CAP_NOPE'"),
    ("capabilities-a-string", process(capabilities="all"), "/capabilities/bounding: got null"),
    ("oom-score-adj-a-string", process(oomScoreAdj="x"), "/oomScoreAdj: got \"x\"; allowed: a number from -1000"),
    ("oom-score-adj-out-of-range", process(oomScoreAdj=5000), "/oomScoreAdj: got 5000; allowed: a number from"),
    ("terminal-a-string", process(terminal="yes"), "/terminal: got \"yes\"; allowed: true or false"),
]


@pytest.mark.parametrize("document,expected", [case[1:] for case in BAD_PROCESSES], ids=[c[0] for c in BAD_PROCESSES])
def test_a_bad_process_is_refused_naming_the_field(box, tmp_path, document, expected):
    path = tmp_path / "process.json"
    path.write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())
    result = box("exec", "--process", str(path), box.bundle.id)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{path}: invalid process:\n  {expected}" in result.stderr, result.stderr
    assert box.state()["status"] == "running"


@pytest.mark.parametrize("flags,expected", [
    (["--user", "-1"], "/user: --user '-1'; allowed: UID or UID:GID"),
    (["--user", "4294967295"], "/user/uid: got 4294967295; allowed: 0 to 2147483647"),
    (["--cwd", "tmp"], "/cwd: got \"tmp\"; allowed: an absolute path"),
    (["--preserve-fds", "-1"], "argument --preserve-fds: -1; allowed: 0 or more"),
], ids=["user-negative", "user-minus-one-unsigned", "cwd-relative", "preserve-fds-negative"])
def test_bad_flags_are_refused_naming_what_is_allowed(box, flags, expected):
    result = box("exec", *flags, box.bundle.id, "--", "true")
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr  # 2: argparse
    assert expected in result.stderr


# Fuzz: mutated process documents compile into an exec plan the executor's check accepts, or are refused with
# a ConfigError (a pointer and a reason). Checked, never run. Sizes as tests/test_fuzz.py.

SEED_PROCESSES = [base_config(["sh"])["process"],
                  json.loads((REFERENCE / "configs" / "podman-exec-process.json").read_text())]
TARGET = {"id": "fuzz", "pid": 1, "bundle": BUNDLE, "rootfs": "/"}


def _compile_mutated_process(data) -> None:
    process = _mutate(data, data.draw(st.sampled_from(SEED_PROCESSES)), data.draw(st.integers(1, 3)))
    try:
        plan = compile_exec(process, TARGET, _seed_plan(1))  # into the hardened container
    except ConfigError as e:
        assert e.pointer.startswith("/") and e.problem
        return
    plans.check_structure(json.loads(json.dumps(plan)))


@fuzz
@given(st.data())
def test_mutated_processes_compile_or_are_refused_with_a_pointer(data):
    _compile_mutated_process(data)


@pytest.mark.slow
@fuzz_slow
@given(st.data())
def test_mutated_processes_at_size(data):
    _compile_mutated_process(data)
