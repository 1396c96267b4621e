"""Bad input: each refused with a clear error naming the field, a non-zero status, no traceback, and nothing
left behind (the autouse check covers mounts, cgroups and processes; these tests also check the state dir)."""

import copy
import json
import re
from pathlib import Path

import pytest

from mrunc.compiler.compile import compile_config
from mrunc.tools.regen_plans import HOST_V2
from tests.conftest import base_config, mrunc, run_config


def _refused(result, *expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert result.stdout == ""


def _state_is_clean(bundle) -> None:
    assert not (bundle.state_root / bundle.id).exists()


@pytest.mark.parametrize("raw,expected", [
    (b'{"ociVersion": "1.0.2", "root": {"path": "rootfs"}', "/: not valid JSON"),
    (b"\xff\xfe{}", "/: not UTF-8"),
    (b'{"a": "x\x00"}', "NUL byte"),
    (b"[1, 2]", "/: got [1, 2]; allowed: object"),
    (b"", "/: not valid JSON"),
])
def test_malformed_config_is_refused(bundle, raw, expected):
    bundle.config_path.write_bytes(raw)
    _refused(mrunc("--root", str(bundle.state_root), "run", "--bundle", str(bundle.path), bundle.id), expected)
    _state_is_clean(bundle)


def _set(config: dict, path: str, value) -> dict:
    """A copy of config with the value at a /-separated path replaced (list indexes as numbers)."""
    config = copy.deepcopy(config)
    *parents, last = path.strip("/").split("/")
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[int(last) if isinstance(node, list) else last] = value
    return config


BAD_CONFIGS = [
    # wrong types and shapes
    ("/process/args", "sh -c true", "/process/args: got \"sh -c true\"; allowed: array"),
    ("/process/user/uid", "0", "/process/user/uid: got \"0\"; allowed: integer"),
    ("/process/user/uid", -1, "/process/user/uid: got -1; allowed: at least 0"),
    ("/mounts", {"destination": "/x"}, "/mounts: got {\"destination\": \"/x\"}; allowed: array"),
    ("/mounts/0/destination", 5, "/mounts/0/destination: got 5; allowed: string"),
    ("/linux/namespaces/0/type", "pidd", "/linux/namespaces/0/type: got \"pidd\"; allowed:"),
    ("/root/readonly", "yes", "/root/readonly: got \"yes\"; allowed: boolean"),
    ("/process/rlimits/0/soft", "lots", "/process/rlimits/0/soft: got \"lots\"; allowed: integer"),
    ("/linux/resources/memory/limit", "1G", "/linux/resources/memory/limit: got \"1G\"; allowed: integer"),
    ("/linux/seccomp", {"defaultAction": "SCMP_ACT_MAYBE"}, "/linux/seccomp/defaultAction: got \"SCMP_ACT_MAYBE\""),
    # fields the spec knows and mrunc cannot honour: refused by name
    ("/linux/intelRdt", {"closID": "x"}, "/linux/intelRdt: Intel RDT is not supported"),
    ("/mounts/0/options", ["idmap"], "/mounts/0/options/0: mount option 'idmap' is not supported"),
    ("/linux/seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"},
     "/linux/seccomp: seccomp user notification"),
    # semantic checks beyond the schema
    ("/linux/personality", {"domain": "LINUX64"}, "/linux/personality/domain: got \"LINUX64\"; allowed:"),
    ("/linux/personality", {"flags": []}, "/linux/personality: 'domain' is a required property"),
    ("/linux/personality", {"domain": "LINUX", "flags": ["X"]}, "/linux/personality/flags: got ['X']; allowed: []"),
    ("/process/ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}, "/process/ioPriority/priority: got 8"),
    ("/process/scheduler", {"policy": "SCHED_BATCH", "priority": 1}, "/process/scheduler/priority: only for"),
    ("/mounts/0/destination", "proc", "/mounts/0/destination: got 'proc'; allowed: an absolute path"),
    ("/mounts/0/destination", "/proc/../etc", "/mounts/0/destination: got '/proc/../etc'; allowed: a path without"),
    ("/process/capabilities/bounding/0", "CAP_NOPE", "/process/capabilities/bounding/0: unknown capability 'CAP_NOPE'"),
    ("/process/rlimits/0/type", "RLIMIT_NOPE", "/process/rlimits/0/type: unknown rlimit 'RLIMIT_NOPE'"),
    ("/process/rlimits/0/soft", 4096, "/process/rlimits/0/soft: soft limit 4096 is above hard limit 1024"),
    ("/process/rlimits/0", {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}, None),  # unlimited
    ("/process/user/uid", 2**32 - 1, "/process/user/uid: got 4294967295; allowed: 0 to 2147483647"),  # -1: root
    ("/linux/uidMappings", [{"containerID": 0, "hostID": 0, "size": 1}], "/linux/uidMappings: id mappings need a user"),
    ("/linux/namespaces/1", {"type": "pid"}, "/linux/namespaces/1/type: namespace 'pid' is listed twice"),
    ("/linux/sysctl", {"kernel.panic": "1"}, "/linux/sysctl/kernel.panic: not a namespaced sysctl"),
    ("/linux/sysctl", {"kernel.shmmax": "1"}, None),  # allowed: the runc spec has an ipc namespace
    ("/linux/cgroupsPath", "/../escape", "/linux/cgroupsPath: got '/../escape'; allowed: a path without '..'"),
    ("/linux/timeOffsets", {"monotonic": {"secs": 1}}, "/linux/timeOffsets: needs a new (not joined) time"),
    ("/linux/seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuchcall"],
                                                                         "action": "SCMP_ACT_ERRNO"}]},
     "/linux/seccomp/syscalls/0/names/0: unknown syscall 'nosuchcall'"),
]


@pytest.mark.parametrize("path,value,expected", BAD_CONFIGS,
                         ids=[f"{p}={json.dumps(v)[:20]}" for p, v, _ in BAD_CONFIGS])
def test_bad_config_is_refused_naming_the_field(bundle, path, value, expected):
    config = _set(base_config(["true"]), path, value)
    result = run_config(bundle, config)
    if expected is None:
        assert result.returncode == 0, result.stderr
        return
    _refused(result, "invalid config:", expected)
    _state_is_clean(bundle)


def test_a_negative_preserve_fds_is_refused_not_a_closed_stderr(bundle):
    result = run_config(bundle, base_config(["true"]), "--preserve-fds", "-1")
    _refused(result, "argument --preserve-fds: -1; allowed: 0 or more")
    _state_is_clean(bundle)


def test_unknown_properties_are_ignored_as_the_spec_says(bundle):
    config = base_config(["echo", "ran"])
    config["someFutureField"] = {"x": 1}
    config["process"]["alsoUnknown"] = True
    result = run_config(bundle, config)
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


def test_several_schema_errors_are_all_reported(bundle):
    config = _set(_set(base_config(["true"]), "/process/user/uid", "x"), "/hostname", 7)
    _refused(run_config(bundle, config), "/hostname: got 7", "/process/user/uid: got \"x\"")


def test_missing_config_file_is_refused(bundle):
    _refused(mrunc("compile", str(bundle.path / "nope.json")), "No such file or directory")


@pytest.mark.parametrize("args,expected", [
    ([], "expected one CONFIG, got 0"),
    (["a.json", "b.json"], "expected one CONFIG, got 2"),
    (["a.json", "--format", "yaml"], "--format: got 'yaml'; allowed: json, text, sh, py"),
    (["a.json", "-o"], "-o: expected a value"),
    (["a.json", "--nope"], "unknown option '--nope'"),
])
def test_compile_usage_errors_name_the_option_and_exit_2(args, expected):
    result = mrunc("compile", *args)
    _refused(result, "usage: mrunc compile CONFIG", expected)
    assert result.returncode == 2


def _options_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", text))


def test_compile_usage_and_help_list_every_option_compile_takes(bundle, tmp_path):
    """Each spelling compile's parser takes (its OPTIONS) is in its usage, its --help and mrunc's own usage, and
    each option those show works on a real compile."""
    from mrunc.commands.compile import OPTIONS

    takes = {spelling for spellings, *_ in OPTIONS for spelling in spellings}
    assert takes >= {"-o", "--output", "--format", "--strict"}
    shown = mrunc("compile", "--help", private_mounts=False)
    assert shown.returncode == 0, shown.stderr
    usage, *described = shown.stdout.splitlines()
    summary = next(line for line in mrunc("--help", private_mounts=False).stdout.splitlines()
                   if line.strip().startswith("compile "))
    assert _options_in(usage) == _options_in(summary) == _options_in("\n".join(described)) == takes, shown.stdout
    config = str(bundle.write(base_config(["true"])))
    values = {"-o": [str(tmp_path / "a.json")], "--output": [str(tmp_path / "b.json")], "--format": ["text"]}
    for option in sorted(takes):
        result = mrunc("compile", config, option, *values.get(option, []), private_mounts=False)
        assert result.returncode == 0, (option, result.stderr)


# Plans -------------------------------------------------------------------------------------------------------

@pytest.fixture
def plan(bundle) -> dict:
    """A good plan for `echo ran`, compiled here (in this process: it is only the input); tests break one thing."""
    return compile_config(str(bundle.write(base_config(["echo", "ran"]))), bundle.id)


def _exec(bundle, plan: dict | str, *flags: str):
    path = bundle.path / "plan.json"
    path.write_text(plan if isinstance(plan, str) else json.dumps(plan))
    return mrunc("exec", *flags, str(path))


def _op_index(plan: dict, name: str) -> int:
    return next(i for i, o in enumerate(plan["ops"]) if o["op"] == name)


def test_good_plan_runs(bundle, plan):
    result = _exec(bundle, plan)
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


def _break(plan: dict, how: str) -> dict:
    plan = copy.deepcopy(plan)
    mount = _op_index(plan, "mount")
    if how == "format":
        plan["format"] = "mrunc-plan/99"
    elif how == "no-ops":
        del plan["ops"]
    elif how == "no-host":
        del plan["host"]
    elif how == "empty-ops":
        plan["ops"] = []
    elif how == "unknown-op":
        plan["ops"][mount]["op"] = "format_disk"
    elif how == "op-without-src":
        del plan["ops"][mount]["src"]
    elif how == "wrong-process":
        plan["ops"][mount]["proc"] = "runtime"
    elif how == "unknown-process":
        plan["ops"][mount]["proc"] = "kernel"
    elif how == "extra-arg":
        plan["ops"][mount]["args"]["extra"] = 1
    elif how == "missing-arg":
        del plan["ops"][mount]["args"]["target"]
    elif how == "args-not-object":
        plan["ops"][mount]["args"] = ["a"]
    elif how == "op-not-object":
        plan["ops"][mount] = "mount"
    elif how == "no-execve":
        plan["ops"].pop()
    elif how == "host":
        plan["host"]["cgroup"] = "v2" if plan["host"]["cgroup"] == "v1" else "v1"
    elif how == "not-object":
        plan = ["ops"]
    elif how == "join-self-unopened":
        del plan["ops"][_op_index(plan, "cgroup_open_tasks")]
    elif how == "tasks-opened-never-written":
        del plan["ops"][_op_index(plan, "cgroup_join_self")]
    elif how == "no-cgroup-joined":
        del plan["ops"][_op_index(plan, "cgroup_joined")]
    elif how == "cgroup-attach-late":
        plan["ops"].insert(mount, plan["ops"].pop(_op_index(plan, "cgroup_attach")))
    elif how == "runtime-op-during-join":
        plan["ops"].insert(mount + 1, copy.deepcopy(plan["ops"][_op_index(plan, "cgroup_write")]))
    return plan


BAD_PLANS = [
    ("format", "/format: unknown plan format 'mrunc-plan/99'"),
    ("no-ops", "/ops: missing"),
    ("no-host", "/host: missing"),
    ("empty-ops", "/ops: expected a non-empty list"),
    ("unknown-op", "unknown op 'format_disk'"),
    ("op-without-src", "/src: missing"),
    ("wrong-process", "/proc: mount runs in init, not 'runtime'"),
    ("unknown-process", "/proc: mount runs in init, not 'kernel'"),
    ("extra-arg", "/args: mount takes"),
    ("missing-arg", "/args: mount takes"),
    ("args-not-object", "/args: mount takes"),
    ("op-not-object", ": expected an object"),
    ("no-execve", "/ops: no execve, so there is nothing to start"),
    ("host", "/host: the plan was compiled for another host: cgroup"),
    ("not-object", "plan: expected a JSON object"),
    ("join-self-unopened", "cgroup_join_self writes the tasks files cgroup_open_tasks opens; there is none before"),
    ("tasks-opened-never-written", "cgroup_join_self, which is missing: init would stay outside its cgroups"),
]


@pytest.mark.parametrize("how,expected", BAD_PLANS, ids=[how for how, _ in BAD_PLANS])
def test_bad_plan_is_refused_before_anything_runs(bundle, plan, how, expected):
    result = _exec(bundle, _break(plan, how))
    _refused(result, expected)
    assert result.stderr.count("\n") <= 2  # one clear message, not a dump


V2_JOINS = [
    ("no-cgroup-joined", "/ops: the runtime ops after fork_init are never waited for (cgroup_joined)"),
    ("cgroup-attach-late", "cgroup_joined waits for runtime ops right after fork_init; there are none"),
    ("runtime-op-during-join", "/proc: a runtime op before cgroup_joined"),
]


@pytest.mark.parametrize("how,expected", V2_JOINS, ids=[how for how, _ in V2_JOINS])
def test_bad_v2_cgroup_join_is_refused_before_anything_runs(bundle, how, expected):
    """v2's join (runtime writes init's pid while init mounts) in a plan compiled for a v2 host: the structure is
    checked before the host, so the refusal names the join."""
    plan = compile_config(str(bundle.write(base_config(["echo", "ran"]))), bundle.id, host=HOST_V2)
    result = _exec(bundle, _break(plan, how))
    _refused(result, expected)
    assert result.stderr.count("\n") <= 2


@pytest.mark.parametrize("text", ['{"format": "mrunc-plan/1", ', "", "\x00", "null"])
def test_malformed_plan_is_refused(bundle, text):
    _refused(_exec(bundle, text), "plan")


def test_missing_plan_file_is_refused(bundle):
    _refused(mrunc("exec", str(bundle.path / "nope.json")), "cannot read plan")


def test_unknown_flag_name_in_a_plan_is_refused_before_anything_runs(bundle, plan):
    index = _op_index(plan, "mount")
    plan["ops"][index]["args"]["flags"] = ["MS_NOPE"]
    _refused(_exec(bundle, plan), f"/ops/{index}/args/flags: item 0: 'MS_NOPE' is not a known mount flag")


def test_start_container_hook_edited_to_run_as_init_is_refused_before_anything_runs(bundle):
    """A hook whose as_process no longer names the filter and credential steps after it would run as init: root,
    every capability, unfiltered."""
    config = base_config(["echo", "ran"])
    config["process"]["noNewPrivileges"] = False  # so the credentials too are steps after the hook
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    config["hooks"] = {"startContainer": [{"path": "/bin/true"}]}
    plan = compile_config(str(bundle.write(config)), bundle.id)
    index = _op_index(plan, "hook")
    steps = plan["ops"][index]["args"]["as_process"]
    assert steps[0] == "seccomp_load" and "set_ids" in steps
    plan["ops"][index]["args"]["as_process"] = []
    _refused(_exec(bundle, plan), f"/ops/{index}/args/as_process: []; expected {steps} (the user process's steps "
             "after it)")
    plan["ops"][index]["args"]["as_process"] = ["set_ids"]
    _refused(_exec(bundle, plan), f"/ops/{index}/args/as_process: ['set_ids']; expected")


# Plans that fail part-way: the op is named, and what the plan already made is gone -----------------------------

def test_missing_binary_fails_at_execve_and_leaves_nothing(bundle):
    config = base_config(["/bin/no-such-program"])
    config["linux"]["resources"]["pids"] = {"limit": 10}
    result = run_config(bundle, config)
    _refused(result, "[init] execve (/process/args)", "ENOENT")
    _state_is_clean(bundle)
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_failing_cgroup_write_in_the_runtime_removes_the_cgroup(bundle):
    config = base_config(["true"])
    config["linux"]["resources"]["cpu"] = {"cpus": "4000"}  # no such cpu: the kernel refuses the write
    result = run_config(bundle, config)
    _refused(result, "[runtime] cgroup_write (/linux/resources/cpu/cpus)", "ERANGE")
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_joining_a_missing_namespace_fails_in_the_child(bundle):
    config = base_config(["true"])
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/run/netns/mrunc-no-such-netns"}
    result = run_config(bundle, config)
    _refused(result, "[child] setns (/linux/namespaces/1)", "ENOENT")
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_bind_of_a_missing_source_fails_in_init(bundle):
    config = base_config(["true"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["bind"]})
    result = run_config(bundle, config)
    _refused(result, f"[init] mount (/mounts/{len(config['mounts']) - 1})", "ENOENT")
    assert not list(Path("/sys/fs/cgroup").glob(f"*{bundle.cgroup}"))


def test_failing_op_in_trace_mode_is_traced_then_reported(bundle):
    result = run_config(bundle, base_config(["/bin/no-such-program"]), "--trace")
    _refused(result)
    traced, report = result.stderr.splitlines()[-2:]
    assert traced.startswith("mrunc: op ") and " [init] execve args=" in traced
    assert report.startswith(traced.split(" [")[0] + " [init] execve (/process/args): ") and "ENOENT" in report
