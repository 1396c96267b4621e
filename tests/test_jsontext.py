"""mrunc.executor.jsontext: JSON by the C scanner and encoder alone gives what the json package gives."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrunc.executor import jsontext

SCALARS = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)
                      | st.tuples(inner) | st.dictionaries(st.integers(), inner, max_size=2), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from([None, 0, 1, 2, 4]))
def test_dumps_writes_what_json_dumps_writes(value, indent):
    assert jsontext.dumps(value, indent=indent) == json.dumps(value, indent=indent)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from([(",", ": "), (",", ":"), (", ", ": ")]), st.sampled_from([None, 1]))
def test_dumps_with_separators_writes_what_json_dumps_writes(value, separators, indent):
    assert jsontext.dumps(value, indent=indent, separators=separators) == \
        json.dumps(value, indent=indent, separators=separators)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.sampled_from([None, 1]))
def test_loads_reads_what_json_loads_reads(value, indent):
    text = json.dumps(value, indent=indent)
    assert jsontext.loads(text) == json.loads(text)
    assert jsontext.loads(f" \n{text}\n".encode()) == json.loads(text)


def error_of(load, text: str) -> str:
    try:
        load(text)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{text!r} loaded")


@pytest.mark.parametrize("text", ['{"a": 1', '{"a": 1} x', "", "[1,]", '"\x01"'])
def test_loads_refuses_what_json_loads_refuses_with_its_message(text):
    assert error_of(jsontext.loads, text) == error_of(json.loads, text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_refuses_nan_and_infinity(constant):
    with pytest.raises(ValueError, match="is not JSON"):
        jsontext.loads(f"[{constant}]")
    assert json.dumps(math.inf) == "Infinity"  # the json package writes them: a plan never holds one
