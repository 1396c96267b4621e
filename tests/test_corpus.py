"""Bad input at scale, through the command line: the corpus in tests/corpus/configs (expected.json names the
field each file gets wrong), generated monsters (deep, huge, NUL), and hand-edited plans (edited BPF, reordered
ops, wrong types). Each must be refused with the JSON pointer of the field, a non-zero exit and no traceback,
and leave nothing behind (no state dir here; the autouse check looks for mounts, cgroups and processes).
(test_bad_input.py checks single cases one by one; this file sweeps many per test.)"""

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mrunc import cli
from tests.conftest import base_config, mrunc, run_config
from tests.hardened import hardened_config, needs_hardened

CORPUS = Path(__file__).parent / "corpus" / "configs"
WORKERS = 4


def _refused_problems(bundle, name: str, raw: bytes, pointer: str) -> list[str]:
    """Run `mrunc run` on a bad config in its own bundle dir; what went wrong (empty: refused cleanly)."""
    directory = bundle.path.parent / f"case-{name}"
    directory.mkdir()
    (directory / "config.json").write_bytes(raw)
    state = bundle.state_root / name
    result = mrunc("--root", str(bundle.state_root), "run", "--bundle", str(directory), name)
    problems = []
    if result.returncode == 0:
        problems.append("exit status 0")
    if f"\n  {pointer}: " not in result.stderr or "Traceback" in result.stderr:
        problems.append(f"stderr does not name {pointer}: {result.stderr[-300:]!r}")
    if state.exists():
        problems.append("state dir left")
    return [f"{name}: {p}" for p in problems]


def _corpus() -> dict[str, str]:
    expected = json.loads((CORPUS / "expected.json").read_text())
    assert len(expected) == len(list(CORPUS.glob("*.json"))) - 1, "every corpus file needs an expected pointer"
    return expected


def test_every_corpus_config_is_refused_naming_its_field(capsys):
    """In-process through the CLI's `compile` (it never runs anything), so the whole corpus costs no start-ups."""
    problems = []
    for name, pointer in _corpus().items():
        status = cli.main(["compile", str(CORPUS / f"{name}.json")])
        err = capsys.readouterr().err
        if status == 0 or f"\n  {pointer}: " not in err:
            problems.append(f"{name}: status {status}, stderr does not name {pointer}: {err[-300:]!r}")
    assert not problems, "\n".join(problems)


def test_corpus_configs_under_run_exit_non_zero_without_traceback_or_state_dir(bundle):
    names = sorted(_corpus())[::8]  # a sample: the in-process test above covers every file
    with ThreadPoolExecutor(WORKERS) as pool:
        found = pool.map(lambda name: _refused_problems(bundle, name, (CORPUS / f"{name}.json").read_bytes(),
                                                        _corpus()[name]), names)
        problems = [p for ps in found for p in ps]
    assert not problems, "\n".join(problems)


def test_deeply_nested_and_nul_laden_configs_are_refused(bundle):
    config = base_config(["true"])
    nul_env = copy.deepcopy(config)
    nul_env["process"]["env"].append("A=x\u0000y")
    cases = {
        "deep-array": (b"[" * 100000 + b"]" * 100000, "/"),
        "deep-annotation": (json.dumps(dict(config, annotations=_nested(900))).encode(), "/annotations/a"),
        "nul-in-env": (json.dumps(nul_env).encode(), "/process/env/2"),
        "nul-in-key": (json.dumps(dict(config, annotations={"a\u0000": "b"})).encode(), "/annotations"),
    }
    problems = [p for name, (raw, pointer) in cases.items() for p in _refused_problems(bundle, name, raw, pointer)]
    assert not problems, "\n".join(problems)


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_an_argument_list_too_long_fails_at_execve_and_leaves_nothing(bundle):
    result = run_config(bundle, base_config(["sh", "-c", "x" * (4 << 20)]))
    assert result.returncode == 1
    assert "execve (/process/args)" in result.stderr and "E2BIG" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (bundle.state_root / bundle.id).exists()


def _plan_cases(plan: dict) -> dict:
    """name -> (edited plan or raw text, what the error must say)."""
    ops = plan["ops"]
    n = len(ops)
    at = {o["op"]: i for i, o in reversed(list(enumerate(ops)))}  # first index of each op
    fork, mount, seccomp, execve = at["fork"], at["mount"], at["seccomp_load"], n - 1

    def edit(change) -> dict:
        edited = copy.deepcopy(plan)
        change(edited, edited["ops"])
        return edited

    def runtime(i: int) -> str:
        return f"mrunc: op {i}/{n} [{ops[i]['proc']}] {ops[i]['op']} ({ops[i]['src']})"

    text = json.dumps(plan)
    return {
        "future-format": (edit(lambda p, o: p.update(format="mrunc-plan/2")), "/format: unknown plan format"),
        "no-ops": (edit(lambda p, o: p.pop("ops")), "/ops: missing"),
        "ops-not-a-list": (edit(lambda p, o: p.update(ops={"a": 1})), "/ops: expected a non-empty list"),
        "unknown-op": (edit(lambda p, o: o[3].update(op="format_disk")), "/ops/3/op: unknown op"),
        "op-name-a-list": (edit(lambda p, o: o[3].update(op=["mount"])), "/ops/3/op: unknown op"),
        "op-without-src": (edit(lambda p, o: o[3].pop("src")), "/ops/3/src: missing"),
        "op-a-string": (edit(lambda p, o: o.__setitem__(3, "mount")), "/ops/3: expected an object"),
        "extra-argument": (edit(lambda p, o: o[mount]["args"].update(evil=1)), f"/ops/{mount}/args: mount takes"),
        "init-op-before-fork": (edit(lambda p, o: o.insert(0, o.pop(mount))), "/ops/0/proc: init op while"),
        "execve-moved-early": (edit(lambda p, o: o.insert(fork + 3, o.pop())), f"/ops/{fork + 3}/proc: init op"),
        "fork-renamed-fork-init": (edit(lambda p, o: o[fork].update(op="fork_init", proc="child")),
                                   f"/ops/{fork}/proc: child op while"),
        "truncated": (text[: len(text) // 2], "not a JSON plan"),
        "deep": ("[" * 100000 + "]" * 100000, "not a JSON plan"),
        "bpf-not-base64": (edit(lambda p, o: o[seccomp]["args"].update(bpf="!!not base64!!")), runtime(seccomp)),
        "bpf-truncated": (edit(lambda p, o: o[seccomp]["args"].update(bpf=o[seccomp]["args"]["bpf"][:-8])),
                          runtime(seccomp)),
        "bpf-not-a-program": (edit(lambda p, o: o[seccomp]["args"].update(bpf="/////////////////////w==")),
                              runtime(seccomp)),
        # Refused by the plan check (argument types, and what the bundle's config asks for) before anything runs:
        "unknown-flag": (edit(lambda p, o: o[mount]["args"].update(flags=["MS_NOPE"])),
                         f"/ops/{mount}/args/flags: item 0: 'MS_NOPE' is not a known mount flag"),
        "uid-a-string": (edit(lambda p, o: o[at["set_ids"]]["args"].update(uid="0")),
                         f"/ops/{at['set_ids']}/args/uid: expected an integer, got '0'"),
        "uid-negative": (edit(lambda p, o: o[at["set_ids"]]["args"].update(uid=-5)),
                         f"/ops/{at['set_ids']}/args/uid: expected an integer >= 0, got -5"),
        "uid-minus-one": (edit(lambda p, o: o[at["set_ids"]]["args"].update(uid=2**32 - 1)),
                          "/process/user: the config runs the process as"),
        "unknown-capability": (edit(lambda p, o: o[at["drop_bounding"]]["args"].update(keep=["CAP_GOD"])),
                               f"/ops/{at['drop_bounding']}/args/keep: item 0: 'CAP_GOD' is not a known cap"),
        "absurd-rlimit": (edit(lambda p, o: o[at["setrlimit"]]["args"].update(soft=2**70, hard=2**70)),
                          runtime(at["setrlimit"])),
        "no-program": (edit(lambda p, o: o[execve]["args"].update(args=[])),
                       "/process/args: the plan's execve does not run the config's process.args"),
        "nul-in-program": (edit(lambda p, o: o[execve]["args"].update(args=["s\u0000h"])),
                           "/process/args: the plan's execve does not run the config's process.args"),
    }


@needs_hardened
def test_edited_plans_are_refused_or_fail_at_their_op_and_leave_nothing(userns_bundle):
    bundle = userns_bundle
    bundle.write(hardened_config(["sh", "-c", "echo RAN"]))
    compiled = mrunc("compile", str(bundle.config_path), private_mounts=False)
    assert compiled.returncode == 0, compiled.stderr
    plan = json.loads(compiled.stdout)
    cgroups = [o["args"]["dir"] for o in plan["ops"] if o["op"] == "cgroup_mkdir"]

    def problems_of(item) -> list[str]:
        name, (edited, says) = item
        path = bundle.path / f"plan-{name}.json"
        path.write_text(edited if isinstance(edited, str) else json.dumps(edited))
        result = mrunc("exec", str(path))
        problems = []
        if result.returncode != 1 or result.stdout:
            problems.append(f"exit status {result.returncode}, output {result.stdout!r}")
        if len(result.stderr.splitlines()) != 1 or says not in result.stderr or "Traceback" in result.stderr:
            problems.append(f"stderr {result.stderr[-300:]!r} does not say {says!r}")
        return [f"{name}: {p}" for p in problems]

    cases = _plan_cases(plan)
    # One at a time: the edited plans share one cgroup path.
    problems = [p for item in cases.items() for p in problems_of(item)]
    assert not problems, "\n".join(problems)
    assert not [d for d in cgroups if Path(d).exists()]
