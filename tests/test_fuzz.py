"""Fuzzing by mutation: valid configs and plans with values replaced by any JSON, entries deleted, and plan bytes
cut or overwritten. The compiler may refuse only with ConfigError (a pointer and a reason) and what it accepts
the executor must accept; the executor's plan check may refuse only with PlanError.

Mutated plans are checked, never run: a random plan run as root could mkdir or mount anywhere on the host.
Examples: MRUNC_FUZZ_EXAMPLES (default 30); the slow-marked runs: MRUNC_FUZZ_SLOW_EXAMPLES (default 200;
raise it to thousands for a long fuzz)."""

import copy
import functools
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrunc.compiler.compile import compile_bytes
from mrunc.compiler.errors import ConfigError, ConfigErrors
from mrunc.executor import coverage
from mrunc.executor import plan as plans
from mrunc.executor.host import fingerprint
from tests.conftest import base_config
from tests.hardened import hardened_config

EXAMPLES = int(os.environ.get("MRUNC_FUZZ_EXAMPLES", "30"))
SLOW_EXAMPLES = int(os.environ.get("MRUNC_FUZZ_SLOW_EXAMPLES", "200"))
HOST = fingerprint()
BUNDLE = "/nonexistent-bundle"  # the plan check then has no config.json to compare against
SEEDS = [base_config(["sh"]), hardened_config(["sh", "-c", "true"])]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(doc: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        found += _paths(value, (*path, key))
    return found


def _mutate(data: st.DataObject, doc: object, rounds: int) -> object:
    """Replace a value anywhere with any JSON, or delete it from its object or list, `rounds` times."""
    doc = copy.deepcopy(doc)
    for _ in range(rounds):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(JSON)
        else:
            del parent[path[-1]]
    return doc


def _compile_mutated(data: st.DataObject) -> None:
    config = _mutate(data, data.draw(st.sampled_from(SEEDS)), data.draw(st.integers(1, 3)))
    try:
        plan = compile_bytes(json.dumps(config).encode(), BUNDLE, "fuzz", HOST)
    except (ConfigError, ConfigErrors) as e:
        errors = e.errors if isinstance(e, ConfigErrors) else [e]
        assert all(err.pointer.startswith("/") and err.problem for err in errors)
        return
    if "process" not in config:  # it compiles, and nothing may start it
        with pytest.raises(plans.PlanError, match="no execve, so there is nothing to start"):
            plans.check_structure(json.loads(json.dumps(plan)))
        return
    plans.check_structure(json.loads(json.dumps(plan)))
    assert coverage.gaps(plan, config) == []


@functools.cache
def _seed_plan(i: int) -> dict:
    return compile_bytes(json.dumps(SEEDS[i]).encode(), BUNDLE, "fuzz", HOST)


def _check_mutated_plan(data: st.DataObject) -> None:
    plan = _seed_plan(data.draw(st.sampled_from(range(len(SEEDS)))))
    text = json.dumps(_mutate(data, plan, data.draw(st.integers(1, 3)))).encode()
    if data.draw(st.booleans()):  # and damage the bytes: cut them, or overwrite a stretch
        start = data.draw(st.integers(0, len(text)))
        text = text[:start] + data.draw(st.binary(max_size=8)) + text[start + data.draw(st.integers(0, 8)):]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(text)
        f.flush()
        try:
            plans.load(f.name)
        except plans.PlanError as e:
            assert str(e)


fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
fuzz_slow = settings(max_examples=SLOW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@fuzz
@given(st.data())
def test_mutated_configs_compile_or_are_refused_with_a_pointer(data):
    _compile_mutated(data)


@fuzz
@given(st.data())
def test_mutated_plans_pass_the_check_or_are_refused_with_plan_error(data):
    _check_mutated_plan(data)


@pytest.mark.slow
@fuzz_slow
@given(st.data())
def test_mutated_configs_at_size(data):
    _compile_mutated(data)


@pytest.mark.slow
@fuzz_slow
@given(st.data())
def test_mutated_plans_at_size(data):
    _check_mutated_plan(data)
