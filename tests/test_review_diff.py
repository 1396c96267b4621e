"""`mrunc diff A B`: semantic, by concern, each change labelled; exit status like diff(1); `--fail-on raise`."""

import json

from mrunc.review.diff import LOWERING, RAISING, SAME, Change, Group, diff, grouped
from tests.conftest import base_config, mrunc
from tests.review_cases import CONFIGS, subject
from tests.test_lowering import compile_fragment


def write(tmp_path, name: str, config: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


def labelled(a: dict, b: dict) -> set[tuple[str, str, str]]:
    return {(c.concern, c.key, c.label) for c in diff(a, b)}


def test_same_config_exits_0_and_a_different_one_1(tmp_path):
    a = write(tmp_path, "a.json", base_config(["true"]))
    config = base_config(["true"])
    config["process"]["noNewPrivileges"] = False
    b = write(tmp_path, "b.json", config)
    assert mrunc("diff", a, a).returncode == 0
    result = mrunc("diff", a, b)
    assert result.returncode == 1
    assert "process:\n  [raising] removed no_new_privs" in result.stdout
    assert "A /process/noNewPrivileges (ops " in result.stdout and "B -" in result.stdout


def test_fail_on_raise_ignores_lowering_changes(tmp_path):
    a = write(tmp_path, "a.json", base_config(["true"]))
    config = base_config(["true"])
    config["process"]["capabilities"] = {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")}
    b = write(tmp_path, "b.json", config)
    assert mrunc("diff", "--fail-on", "raise", a, b).returncode == 0  # dropping capabilities lowers
    result = mrunc("diff", "--fail-on", "raise", b, a)
    assert result.returncode == 1, result.stdout
    assert "[raising] added bounding CAP_NET_BIND_SERVICE" in result.stdout


def test_bad_input_exits_2(tmp_path):
    good = write(tmp_path, "a.json", base_config(["true"]))
    bad = write(tmp_path, "bad.json", {"ociVersion": "1.0.0"})
    result = mrunc("diff", good, bad)
    assert result.returncode == 2 and "neither a plan nor a valid config" in result.stderr
    assert mrunc("diff", good, str(tmp_path / "missing.json")).returncode == 2


def test_a_config_and_its_compiled_plan_do_not_differ(tmp_path):
    config = write(tmp_path, "config.json", base_config(["true"]))
    plan = tmp_path / "plan.json"
    assert mrunc("compile", config, "-o", str(plan)).returncode == 0
    result = mrunc("diff", config, str(plan))
    assert (result.returncode, result.stdout.splitlines()[0].split(": ")[1]) == (0, "0 changes, 0 raising privilege")


def test_reordering_that_changes_nothing_is_not_a_change():
    a = subject("runc-spec").plan
    config = json.loads(CONFIGS["runc-spec"].read_text())
    config["linux"]["namespaces"].reverse()
    config["process"]["capabilities"]["bounding"].reverse()
    config["linux"]["maskedPaths"].reverse()
    from mrunc.compiler.compile import compile_bytes

    b = compile_bytes(json.dumps(config).encode(), a["bundle"], "runc-spec", a["host"])
    assert a["ops"] != b["ops"]  # the masked paths are masked in another order: a reorder that changes nothing
    assert diff(a, b) == []


def test_a_reordered_mount_list_is_a_change_and_shadowing_raises():
    config = json.loads(CONFIGS["runc-spec"].read_text())
    a = subject("runc-spec").plan
    from mrunc.compiler.compile import compile_bytes

    def compiled(c):
        return compile_bytes(json.dumps(c).encode(), a["bundle"], "runc-spec", a["host"])

    swapped = json.loads(json.dumps(config))
    swapped["mounts"][1], swapped["mounts"][2] = swapped["mounts"][2], swapped["mounts"][1]  # /dev, /dev/pts
    assert ("mounts", "order", RAISING) in labelled(compiled(config), compiled(swapped))
    apart = json.loads(json.dumps(config))
    apart["mounts"][0], apart["mounts"][1] = apart["mounts"][1], apart["mounts"][0]  # /proc, /dev
    assert ("mounts", "order", SAME) in labelled(compiled(config), compiled(apart))


def test_changes_are_labelled_by_privilege():
    changes = labelled(subject("hardened").plan, subject("privileged").plan)
    assert ("capabilities", "bounding CAP_SYS_ADMIN", RAISING) in changes
    assert ("seccomp", "filter", RAISING) in changes
    assert ("namespaces", "pid", RAISING) in changes
    assert ("mounts", "mount /host", RAISING) in changes
    assert ("devices", "node /dev/sda", RAISING) in changes
    assert ("process", "uid", RAISING) in changes
    assert ("cgroups", "memory/limit", RAISING) in changes
    back = labelled(subject("privileged").plan, subject("hardened").plan)
    assert ("seccomp", "filter", LOWERING) in back and ("namespaces", "pid", LOWERING) in back


def test_markdown_diff_is_a_table_for_a_review():
    a, b = str(CONFIGS["runc-spec"]), str(CONFIGS["privileged"])
    result = mrunc("diff", "--format", "markdown", a, b)
    lines = result.stdout.splitlines()
    assert lines[0] == f"### mrunc diff: `{a}` → `{b}`"
    assert "| Concern | Privilege | Change | Was | Now | Config A | Config B |" in lines
    assert "| capabilities | **raising** | added `bounding` | - | `38 items: CAP_AUDIT_CONTROL" in result.stdout


def test_scheduler_and_io_priority_that_can_starve_the_host_raise_privilege():
    plain = compile_fragment({})
    greedy = compile_fragment({"process": {"cwd": "/", "args": ["sh"],
                                           "scheduler": {"policy": "SCHED_FIFO", "priority": 50},
                                           "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 0}},
                               "linux": {"namespaces": [{"type": "mount"}], "personality": {"domain": "LINUX32"}}})
    assert labelled(plain, greedy) == {("process", "scheduler", RAISING), ("process", "io priority", RAISING),
                                       ("process", "personality", SAME)}
    assert labelled(greedy, plain) == {("process", "scheduler", LOWERING), ("process", "io priority", LOWERING),
                                       ("process", "personality", SAME)}
    polite = compile_fragment({"process": {"cwd": "/", "args": ["sh"], "scheduler": {"policy": "SCHED_IDLE"},
                                           "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}}})
    assert labelled(plain, polite) == {("process", "scheduler", SAME), ("process", "io priority", SAME)}


def test_rootfs_propagation_shared_shows_as_the_rootfs_mounts_own_after_pivot_root():
    """Before pivot_root / stays private for shared (pivot_root refuses a shared root); the rootfs takes MS_SHARED
    after: the diff names both facts."""
    changes = {(c.concern, c.key) for c in diff(compile_fragment({}),
                                                  compile_fragment({"linux": {"rootfsPropagation": "shared"}}))}
    assert ("mounts", "rootfs propagation") in changes and ("mounts", "/ propagation") not in changes


def test_a_removed_capability_drop_is_one_line_per_set_and_json_lists_every_item(tmp_path):
    plan = subject("hardened").plan
    dropless = {**plan, "ops": [o for o in plan["ops"] if o["op"] not in ("drop_bounding", "capset")]}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(plan))
    b.write_text(json.dumps(dropless))
    text = mrunc("diff", str(a), str(b), private_mounts=False)
    assert text.returncode == 1, text.stderr
    capability_lines = [line for line in text.stdout.splitlines() if line.startswith("  [raising] added ")]
    assert [line.split(":")[0] for line in capability_lines] == [
        "  [raising] added bounding", "  [raising] added effective", "  [raising] added permitted"]
    assert len(text.stdout.splitlines()) < 20, text.stdout
    report = json.loads(mrunc("diff", "--format", "json", str(a), str(b), private_mounts=False).stdout)
    added = {c["key"] for c in report["changes"] if c["concern"] == "capabilities"}
    assert len(added) == len(diff(plan, dropless)) > 100
    groups = {g["set"]: g["items"] for g in report["groups"]}
    assert {f"bounding {cap}" for cap in groups["bounding"]} == {k for k in added if k.startswith("bounding ")}


def test_three_alike_changes_are_grouped_two_are_not_and_mounts_never():
    def added(key: str, concern: str = "capabilities", src: str = "/process/capabilities/bounding") -> Change:
        return Change(concern, key, "added", None, True, RAISING, None, src, [], [7])

    two = [added("bounding CAP_A"), added("bounding CAP_B")]
    assert grouped(two) == two
    three = [*two, added("bounding CAP_C")]
    assert grouped(three) == [Group("capabilities", "bounding", "added", RAISING, ["CAP_A", "CAP_B", "CAP_C"],
                                    None, "/process/capabilities/bounding", [], [7])]
    mounts = [added(f"mount /m{i}", "mounts", f"/mounts/{i}") for i in range(3)]
    assert grouped(mounts) == mounts
    masked = [added(f"masked /p{i}", "mounts", f"/linux/maskedPaths/{i}") for i in range(3)]
    assert grouped(masked)[0].src_b == "/linux/maskedPaths"
