"""The generated validator (mrunc/schemas/valid_config.py) accepts and refuses exactly what jsonschema's
Draft4Validator does for mrunc's schema: on the spec's own examples, the reference and corpus configs, configs
drawn from the schema, and the same configs mutated (wrong types, values just past a bound, required fields
deleted, enums missed, properties added where the schema forbids them). And it is current: what the generator
makes of the schema and the template today.

Examples per property: MRUNC_HYPOTHESIS_EXAMPLES (default 30; mutations are cheap and get ten times that). They
are the same on every run; MRUNC_HYPOTHESIS_RANDOM=1 searches for new ones.
"""

import copy
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from mrunc.compiler import load
from mrunc.compiler.errors import ConfigError, ConfigErrors
from mrunc.schemas import valid_config
from mrunc.schemas.valid_config import is_valid
from mrunc.tools import gen_validator
from tests.conftest import base_config
from tests.hardened import hardened_config

REPO = Path(__file__).resolve().parents[1]
SPEC_TESTS = REPO / "reference" / "oci-runtime-spec-v1.3.0" / "test" / "config"
SCHEMA = load.schema()
JSONSCHEMA = jsonschema.Draft4Validator(SCHEMA)
EXAMPLES = int(os.environ.get("MRUNC_HYPOTHESIS_EXAMPLES", "30"))
COMMON = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None,
          "derandomize": os.environ.get("MRUNC_HYPOTHESIS_RANDOM") != "1"}


def _agree(config: object) -> bool:
    """The generated validator's verdict, asserted equal to jsonschema's."""
    verdict = is_valid(config)
    assert verdict == JSONSCHEMA.is_valid(config), (
        f"generated validator says {'valid' if verdict else 'invalid'}, jsonschema "
        f"{[e.message for e in JSONSCHEMA.iter_errors(config)]} for {json.dumps(config)[:2000]}")
    return verdict


def test_generated_validator_is_current():
    assert (REPO / "mrunc" / "schemas" / "valid_config.py").read_text() == gen_validator.render(SCHEMA), \
        "run: python -m mrunc.tools.gen_validator"


def test_generator_refuses_a_keyword_it_does_not_translate():
    with pytest.raises(gen_validator.UnsupportedSchema, match="multipleOf"):
        gen_validator.render({**SCHEMA, "properties": {"n": {"type": "integer", "multipleOf": 2}}})


# --- patterns: matched without re where greedy steps find what re.search finds ---------------------------------

PATTERNS = gen_validator.pattern_names(gen_validator.Generator(SCHEMA).run())


def _alphabet(pattern: str) -> list[str]:
    """Characters at and just past the edge of every class in the pattern, and a few that are in none."""
    points = {ord(c) for c in "\n x=/-,"}
    for alternative in gen_validator.anchored_pattern(pattern) or ():
        for step in alternative.steps:
            for low, high in step.chars.ranges:
                points |= {low - 1, low, high, high + 1}
    return sorted(chr(p) for p in points if 0 <= p <= 0x10FFFF)


def _strings(alphabet: list[str], longest: int) -> list[str]:
    found = [""]
    for _ in range(longest):
        found += [s + c for s in found if len(s) == len(found[-1]) for c in alphabet]
    return found


def test_every_pattern_of_the_schema_but_none_of_re_is_matched_without_re():
    left_to_re = [p for p in PATTERNS if gen_validator.anchored_pattern(p) is None]
    assert left_to_re == [], "patterns a valid config would make the module import re for"
    assert "import re" not in (REPO / "mrunc" / "schemas" / "valid_config.py").read_text().split("class _Regex")[0]


@pytest.mark.parametrize("pattern", PATTERNS, ids=PATTERNS.values())
def test_matcher_agrees_with_re_on_every_short_string(pattern):
    matcher = getattr(valid_config, PATTERNS[pattern])
    strings = _strings(_alphabet(pattern), 3)
    assert [s for s in strings if matcher.search(s) != bool(re.search(pattern, s))] == []


@settings(max_examples=EXAMPLES * 10, **COMMON)
@given(st.data())
def test_matcher_agrees_with_re_on_matches_edited(data):
    pattern = data.draw(st.sampled_from(sorted(PATTERNS)))
    text = data.draw(st.from_regex(pattern))
    at = data.draw(st.integers(0, len(text)))
    edit = data.draw(st.sampled_from(_alphabet(pattern)) | st.characters())
    edited = data.draw(st.sampled_from([text, text[:at] + edit + text[at:], text[:at] + edit + text[at + 1:],
                                        text[:at] + text[at + 1:], text + "\n", text + "\n\n"]))
    assert getattr(valid_config, PATTERNS[pattern]).search(edited) == bool(re.search(pattern, edited))


@pytest.mark.parametrize("pattern, translated", [
    ("^[0-9]*[0-9a]$", False),  # the repeat could give back what the next step wants
    ("^a*b*$", False),  # two repeats of varying count in a row
    ("[0-9]+", False),  # not anchored
    ("^\\d+$", False),  # \d means more than 0-9 to re
    ("^a.b$", False),
    ("^[^=]+=", True),
    ("^x[0-9]{2,4}y|^z", True),
])
def test_only_patterns_greedy_steps_match_exactly_are_translated(pattern, translated):
    assert (gen_validator.anchored_pattern(pattern) is not None) == translated


# --- fixed configs ---------------------------------------------------------------------------------

def _json_files(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs for p in d.glob("*.json"))


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
        return True
    except ValueError:  # the spec's invalid-json.json and the corpus's unparsable files: no validator sees them
        return False


SPEC_GOOD = _json_files(SPEC_TESTS / "good")
SPEC_BAD = [p for p in _json_files(SPEC_TESTS / "bad") if _parses(p)]
OTHERS = [p for p in _json_files(REPO / "reference" / "configs", REPO / "tests" / "corpus" / "configs",
                                 REPO / "plans" / "configs") if _parses(p)]


@pytest.mark.parametrize("path", SPEC_GOOD, ids=[p.name for p in SPEC_GOOD])
def test_spec_good_examples_are_valid_for_both(path):
    assert _agree(json.loads(path.read_bytes()))


@pytest.mark.parametrize("path", SPEC_BAD, ids=[p.name for p in SPEC_BAD])
def test_spec_bad_examples_are_refused_by_both(path):
    assert not _agree(json.loads(path.read_bytes()))


def test_spec_bad_example_that_is_not_json_is_refused_before_any_validator():
    unparsable = [p for p in _json_files(SPEC_TESTS / "bad") if not _parses(p)]
    assert [p.name for p in unparsable] == ["invalid-json.json"]
    with pytest.raises(ConfigError, match="not valid JSON"):
        load.parse(unparsable[0].read_bytes())


@pytest.mark.parametrize("path", OTHERS, ids=[f"{p.parent.name}/{p.name}" for p in OTHERS])
def test_both_agree_on_reference_and_corpus_configs(path):
    _agree(json.loads(path.read_bytes()))


VALID = base_config(["true"])


def _with(path: tuple, value: object, base: dict = VALID) -> dict:
    config = copy.deepcopy(base)
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return config


DELETE = object()
REFUSED_BY_BOTH = {
    "top-level list": [VALID],
    "ociVersion a number": _with(("ociVersion",), 1),
    "root missing": _with(("root",), DELETE),
    "root.path empty": _with(("root", "path"), ""),
    "cwd relative": _with(("process", "cwd"), "tmp"),
    "cwd missing": _with(("process", "cwd"), DELETE),
    "uid negative": _with(("process", "user", "uid"), -1),
    "uid past uint32": _with(("process", "user", "uid"), 2**32),
    "uid a float": _with(("process", "user", "uid"), 0.0),
    "uid a bool": _with(("process", "user", "uid"), True),
    "oomScoreAdj past 1000": _with(("process", "oomScoreAdj"), 1001),
    "oomScoreAdj a fraction": _with(("process", "oomScoreAdj"), 0.5),
    "terminal a number": _with(("process", "terminal"), 1),
    "env entry without =": _with(("process", "env"), ["PATH"]),
    "capability lowercase": _with(("process", "capabilities", "bounding"), ["cap_chown"]),
    "namespace type unknown": _with(("linux", "namespaces"), [{"type": "net"}]),
    "rootfsPropagation unknown": _with(("linux", "rootfsPropagation"), "rnope"),
    "timeOffsets extra property": _with(("linux", "timeOffsets"), {"realtime": {"secs": 1}}),
    "nanosecs past 999999999": _with(("linux", "timeOffsets"), {"boottime": {"nanosecs": 10**9}}),
    "mount uidMappings not empty": _with(("mounts",), [{"destination": "/x", "uidMappings": [{}]}]),
    "seccomp names empty": _with(("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW",
                                                        "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]}),
    "seccomp arg index 6": _with(("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": "SCMP_ACT_LOG", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
    "rdma entry not an object": _with(("linux", "resources", "rdma"), {"mlx": 1}),
    "sysctl value a number": _with(("linux", "sysctl"), {"net.ipv4.ip_forward": 1}),
    "hugepage size 0MB": _with(("linux", "resources", "hugepageLimits"), [{"pageSize": "0MB", "limit": 1}]),
}


@pytest.mark.parametrize("config", REFUSED_BY_BOTH.values(), ids=REFUSED_BY_BOTH.keys())
def test_invalid_config_is_refused_by_both(config):
    assert not _agree(config)


def test_refusal_is_explained_by_jsonschema_with_its_pointer():
    with pytest.raises(ConfigErrors) as raised:
        load.validate(REFUSED_BY_BOTH["uid past uint32"])
    assert str(raised.value) == "/process/user/uid: got 4294967296; allowed: at most 4294967295"


def test_valid_config_is_accepted_without_importing_jsonschema():
    import subprocess
    import sys

    code = ("import json, sys; from mrunc.compiler import load; load.validate(json.loads(sys.argv[1])); "
            "print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(hardened_config(["true"]))], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out == "False\n"


# --- drawn and mutated configs -----------------------------------------------------------------------

def _schema_values(node: object) -> list:
    """Values on either side of every bound and enum in the schema, and every property name."""
    found: list = []
    if isinstance(node, dict):
        for key in ("minimum", "maximum", "minLength", "minItems", "maxItems"):
            if key in node:
                found += [node[key] - 1, node[key], node[key] + 1, float(node[key])]
        for value in node.get("enum", []):
            found += [value, value.lower() + "x"]
        found += list(node.get("properties", {}))
        for sub in node.values():
            found += _schema_values(sub)
    elif isinstance(node, list):
        for sub in node:
            found += _schema_values(sub)
    return found


EDGES = [None, True, False, 0, 1, -1, 0.5, 1.0, "", "/", "a", "a=b", "CAP_CHOWN", "RLIMIT_NOFILE", "1.0.0",
         "0-3", "1GB", "rwm", "rwmx", [], {}, [""], [{}], {"": ""}]
POOL = sorted({json.dumps(v) for v in EDGES + _schema_values(SCHEMA)})
INTERESTING = st.sampled_from(POOL).map(json.loads)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5)
PROPERTY_NAMES = sorted({v for v in _schema_values(SCHEMA) if isinstance(v, str)} | {"zzz"})


def _nodes(doc: object, path: tuple = ()) -> list[tuple]:
    found = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        found += _nodes(value, (*path, key))
    return found


def _at(doc: object, path: tuple) -> object:
    for key in path:
        doc = doc[key]
    return doc


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _schema_at(path: tuple) -> dict | None:
    """The subschema that applies at `path` of a config (None where the schema says nothing)."""
    node: dict | None = SCHEMA
    for key in path:
        node = _resolve(node)
        if isinstance(key, int):
            node = node.get("items")
        else:
            additional = node.get("additionalProperties")
            node = node.get("properties", {}).get(key, additional if isinstance(additional, dict) else None)
        if node is None:
            return None
    return _resolve(node)


def _near_misses(node: dict | None, value: object) -> list:
    """Values just inside and just outside what `node` allows, made from `value`: each bound and one past it,
    an enum's values misspelt, a pattern's string edited at either end, a required field gone, a property
    added, an array emptied or grown."""
    if node is None:
        return []
    found: list = []
    for key, step in (("minimum", -1), ("maximum", 1)):
        if key in node:
            found += [node[key], node[key] + step, float(node[key]), node[key] + step / 2]
    for each in node.get("enum", []):
        found += [each, each + "x", each.lower(), each[:-1]]
    if isinstance(value, str):
        found += [value + "x", "x" + value, value + "\n", value[1:], value[:-1], value.upper(), value.lower(), ""]
    if isinstance(value, dict):
        found += [{k: v for k, v in value.items() if k != gone} for gone in node.get("required", [])]
        found += [{**value, extra: value.get(extra, {})} for extra in ("zzz", *node.get("properties", {}))]
    if isinstance(value, list):
        found += [[], value + value[:1], value + [{}], value + [""]]
    return found


@st.composite
def mutated(draw, seeds: st.SearchStrategy) -> object:
    """A config with 1-3 edits, each at a place drawn from it: a value replaced by a near miss of its
    subschema (mostly), by an edge of the whole schema or by any JSON; a field or item deleted; a property added."""
    doc = copy.deepcopy(draw(seeds))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_nodes(doc)))
        edit = draw(st.sampled_from(["near", "near", "near", "replace", "delete", "add"]))
        target = _at(doc, path)
        misses = _near_misses(_schema_at(path), target)
        if edit == "near" and misses:
            value = copy.deepcopy(draw(st.sampled_from(misses)))
        elif edit == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(PROPERTY_NAMES))] = draw(INTERESTING | ANY_JSON)
            continue
        elif edit == "delete" and path:
            del _at(doc, path[:-1])[path[-1]]
            continue
        else:
            value = draw(INTERESTING | ANY_JSON)
        if path:
            _at(doc, path[:-1])[path[-1]] = value
        else:
            doc = value
    return doc


def _sub_schema(section: str) -> dict:
    """A copy: hypothesis-jsonschema rewrites the schemas it is given in place (canonical forms)."""
    return copy.deepcopy({"definitions": SCHEMA["definitions"], **SCHEMA["properties"][section]})


@st.composite
def schema_configs(draw) -> dict:
    """A real config with sections drawn from the schema (so they reach timeOffsets, rdma, hooks...)."""
    config = copy.deepcopy(VALID)
    for section in draw(st.lists(st.sampled_from(["process", "linux", "mounts", "hooks", "root"]), min_size=1,
                                 max_size=2, unique=True)):
        config[section] = draw(from_schema(_sub_schema(section)))
    return config


SEEDS = st.sampled_from([VALID, hardened_config(["sh"])] + [json.loads(p.read_bytes()) for p in SPEC_GOOD])


@settings(max_examples=EXAMPLES, **COMMON)
@given(schema_configs())
def test_configs_drawn_from_the_schema_are_valid_for_both(config):
    assert _agree(config)


@settings(max_examples=EXAMPLES * 10, **COMMON)
@given(mutated(SEEDS))
def test_both_agree_on_mutated_real_configs(config):
    _agree(config)


@settings(max_examples=EXAMPLES, **COMMON)
@given(mutated(schema_configs()))
def test_both_agree_on_mutated_schema_configs(config):
    _agree(config)


def _single_edits(config: dict) -> list[object]:
    """`config` with one value replaced by each of its near misses, for every place in it."""
    edited = []
    for path in _nodes(config)[1:]:
        for miss in _near_misses(_schema_at(path), _at(config, path)):
            doc = copy.deepcopy(config)
            _at(doc, path[:-1])[path[-1]] = miss
            edited.append(doc)
    return edited


RICH = {"spec-example": json.loads((SPEC_TESTS / "good" / "spec-example.json").read_bytes()),
        "hardened": hardened_config(["sh"])}


@pytest.mark.parametrize("name", RICH)
def test_both_agree_on_every_near_miss_of_a_rich_config(name):
    verdicts = {_agree(doc) for doc in _single_edits(RICH[name])}
    assert verdicts == {True, False}
