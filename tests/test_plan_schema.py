"""The plan format, published: mrunc/schemas/plan.schema.json is generated from the executor's op table and
argument types (executor/argtypes.py), every plan mrunc compiles validates against it, and the executor's own
check (no jsonschema on the exec path) accepts and refuses the same argument values as the schema."""

import copy
import json

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mrunc.compiler import plan_schema
from mrunc.executor import argtypes
from mrunc.executor.ops import OPS
from mrunc.executor.plan import PlanError, check_structure
from mrunc.tools.regen_plans import GOLDENS, PLAN_SCHEMA, PLANS
from tests.test_properties import HOSTS, compile_config, quick, valid_configs

SCHEMA = json.loads(PLAN_SCHEMA.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
GOLDEN_PLANS = {g.name: json.loads((PLANS / f"{g.name}.json").read_text()) for g in GOLDENS}


def test_every_argument_of_every_op_has_a_type():
    untyped = [f"{name}.{arg}" for name, spec in OPS.items() for arg in spec.args
               if argtypes.BY_OP.get((name, arg)) is None and arg not in argtypes.ARGS]
    assert untyped == [], "add them to mrunc/executor/argtypes.py"


def test_the_published_schema_is_generated_from_the_op_table():
    assert SCHEMA == plan_schema.schema(), "run `python -m mrunc.tools.regen_plans`"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert set(SCHEMA["$defs"]) == {"host", "op"} | {f"op.{name}" for name in OPS}


@pytest.mark.parametrize("name", sorted(GOLDEN_PLANS))
def test_every_golden_plan_validates_against_the_schema(name):
    VALIDATOR.validate(GOLDEN_PLANS[name])


@quick
@given(valid_configs(), HOSTS)
def test_every_plan_compiled_from_a_valid_config_validates_against_the_schema(config, host):
    VALIDATOR.validate(compile_config(config, host))


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**33), st.text(max_size=8),
                   st.sampled_from(["MS_BIND", "CAP_KILL", "CLONE_NEWPID", "dir", "c", "RLIMIT_NOFILE", "x"]),
                   st.lists(st.one_of(st.integers(-1, 5), st.text(max_size=4),
                                      st.sampled_from(["MS_REC", "CAP_CHOWN", "CLONE_NEWNS", "NOPE"])), max_size=3),
                   st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))


@quick
@given(st.sampled_from(sorted(GOLDEN_PLANS)), st.data(), VALUES)
def test_exec_and_the_schema_refuse_the_same_argument_values(name, data, value):
    """Floats are left out: JSON Schema calls 1.0 an integer; mrunc writes integers without a fraction."""
    plan = copy.deepcopy(GOLDEN_PLANS[name])
    with_args = [i for i, o in enumerate(plan["ops"]) if o["args"]]
    i = data.draw(st.sampled_from(with_args))
    arg = data.draw(st.sampled_from(sorted(plan["ops"][i]["args"])))
    plan["ops"][i]["args"][arg] = value
    schema_accepts = VALIDATOR.is_valid(plan)
    try:
        check_structure(plan)
        exec_accepts = True
    except PlanError as e:
        exec_accepts = False
        assert str(e).startswith(f"/ops/{i}/args/{arg}: "), e
    assert exec_accepts == schema_accepts, (plan["ops"][i]["op"], arg, value)


@pytest.mark.parametrize(("op", "arg", "value", "message"), [
    ("mknod", "major", "x", "expected an integer, got 'x'"),
    ("mount", "flags", ["MS_BIND", "MS_NOPE"], "item 1: 'MS_NOPE' is not a known mount flag"),
    ("set_ids", "uid", -1, "expected an integer >= 0, got -1"),
    ("execve", "args", "sh", "expected a list, got 'sh'"),
    ("capset", "effective", ["CAP_NOPE"], "item 0: 'CAP_NOPE' is not a known cap"),
])
def test_a_wrong_argument_is_refused_naming_its_pointer(op, arg, value, message):
    plan = copy.deepcopy(GOLDEN_PLANS["podman-run-tty"])
    i = next(i for i, o in enumerate(plan["ops"]) if o["op"] == op)
    plan["ops"][i]["args"][arg] = value
    with pytest.raises(PlanError) as refused:
        check_structure(plan)
    assert str(refused.value) == f"/ops/{i}/args/{arg}: {message}"
