"""compile's own draft-4 checker (compiler/schema_check.py) agrees with jsonschema: same errors, paths, messages."""

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrunc.compiler import load
from mrunc.compiler.schema_check import Checker
from tests.conftest import REFERENCE

SCHEMA = load.schema()
REFERENCE_CONFIGS = sorted((REFERENCE / "configs").glob("*.json"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["/abs", "CAP_KILL", "rw", "bind", "SCMP_ACT_ALLOW", "PATH=/bin", ""]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)


def ours(instance: object) -> list[tuple]:
    return sorted((list(map(str, e.absolute_path)), e.validator, e.message) for e in Checker(SCHEMA).errors(instance))


def theirs(instance: object) -> list[tuple]:
    return sorted((list(map(str, e.absolute_path)), e.validator, e.message)
                  for e in jsonschema.Draft4Validator(SCHEMA).iter_errors(instance))


def _containers(value: object, path: tuple = ()) -> list[tuple]:
    """Paths of every dict and list inside value, the root included."""
    found = [path] if isinstance(value, dict | list) else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found += _containers(child, (*path, key))
    return found


@pytest.mark.parametrize("path", REFERENCE_CONFIGS, ids=lambda p: p.name)
def test_reference_configs_give_the_same_verdict(path):
    config = json.loads(path.read_text())
    assert ours(config) == theirs(config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REFERENCE_CONFIGS), st.data())
def test_mutated_configs_give_the_same_errors(path, data):
    """Replace or add one member anywhere in a real config with an arbitrary JSON value."""
    config = json.loads(path.read_text())
    where = data.draw(st.sampled_from(_containers(config)))
    target = config
    for key in where:
        target = target[key]
    value = data.draw(JSON_VALUES)
    if isinstance(target, dict):
        target[data.draw(st.sampled_from([*target, "extra"]))] = value
    elif target:
        target[data.draw(st.integers(0, len(target) - 1))] = value
    else:
        target.append(value)
    assert ours(config) == theirs(config)


def test_an_unsupported_keyword_in_the_schema_is_refused():
    with pytest.raises(ValueError, match="oneOf"):
        Checker({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}})
