"""A JSON Schema (draft 4) checker for the keywords mrunc's trimmed config schema uses, and only those.

jsonschema takes longer to import than compiling podman's whole config does (~100 ms of the 150 ms budget),
so compile checks with this; tests/test_schema_check.py holds it to jsonschema's verdicts and messages.
Keywords: $ref (local), type, properties, additionalProperties, required, items, enum, pattern, minimum,
maximum, minLength, minItems, maxItems. Any other keyword in the schema is a bug, refused at load.
"""

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

KEYWORDS = {"$ref", "type", "properties", "additionalProperties", "required", "items", "enum", "pattern", "minimum",
            "maximum", "minLength", "minItems", "maxItems",
            "$schema", "title", "description", "definitions", "id"}  # annotations: no check


class SchemaError(NamedTuple):
    """One violation, with what jsonschema's ValidationError would carry."""

    absolute_path: tuple[str | int, ...]  # where in the instance
    validator: str  # the keyword that failed
    validator_value: Any  # its value in the schema
    instance: Any  # the value that failed
    message: str  # jsonschema's message for it


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return name == "boolean"
    return {
        "object": isinstance(value, dict), "array": isinstance(value, list), "string": isinstance(value, str),
        "integer": isinstance(value, int), "number": isinstance(value, int | float), "null": value is None,
        "boolean": False,
    }[name]


class Checker:
    def __init__(self, schema: dict) -> None:
        self.root = schema
        self._check_keywords(schema)

    def _check_keywords(self, schema: object) -> None:
        if isinstance(schema, dict):
            unknown = set(schema) - KEYWORDS
            if unknown:
                raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by schema_check")
            for key, value in schema.items():
                if key in ("properties", "definitions"):
                    for sub in value.values():
                        self._check_keywords(sub)
                elif key in ("items", "additionalProperties"):
                    self._check_keywords(value)

    def errors(self, instance: object) -> Iterator[SchemaError]:
        return self._errors(instance, self.root, ())

    def _resolve(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _errors(self, value: Any, schema: dict, path: tuple) -> Iterator[SchemaError]:
        if "$ref" in schema:  # draft 4: $ref replaces its siblings
            yield from self._errors(value, self._resolve(schema["$ref"]), path)
            return
        for keyword, expected in schema.items():
            check = _CHECKS.get(keyword)
            if check:
                for message in check(value, expected):
                    yield SchemaError(path, keyword, expected, value, message)
        if isinstance(value, dict):
            yield from self._object_members(value, schema, path)
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                yield from self._errors(item, schema["items"], (*path, i))

    def _object_members(self, value: dict, schema: dict, path: tuple) -> Iterator[SchemaError]:
        properties = schema.get("properties", {})
        for name, sub in properties.items():
            if name in value:
                yield from self._errors(value[name], sub, (*path, name))
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict):
            for name in value:
                if name not in properties:
                    yield from self._errors(value[name], extra, (*path, name))
        elif extra is False:
            unexpected = sorted((name for name in value if name not in properties), key=str)
            if unexpected:
                verb = "was" if len(unexpected) == 1 else "were"
                names = ", ".join(repr(name) for name in unexpected)
                yield SchemaError(path, "additionalProperties", False, value,
                                  f"Additional properties are not allowed ({names} {verb} unexpected)")


def _type(value: object, expected: str | list[str]) -> Iterator[str]:
    types = [expected] if isinstance(expected, str) else expected
    if not any(_is_type(value, t) for t in types):
        yield f"{value!r} is not of type {', '.join(repr(t) for t in types)}"


def _required(value: object, expected: list[str]) -> Iterator[str]:
    if isinstance(value, dict):
        for name in expected:
            if name not in value:
                yield f"{name!r} is a required property"


def _enum(value: object, expected: list) -> Iterator[str]:
    if not any(_equal(value, option) for option in expected):
        yield f"{value!r} is not one of {expected!r}"


def _equal(a: object, b: object) -> bool:
    """JSON equality: true is not 1, and 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _pattern(value: object, expected: str) -> Iterator[str]:
    if isinstance(value, str) and not re.search(expected, value):
        yield f"{value!r} does not match {expected!r}"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _minimum(value: object, expected: float) -> Iterator[str]:
    if _number(value) and value < expected:
        yield f"{value!r} is less than the minimum of {expected!r}"


def _maximum(value: object, expected: float) -> Iterator[str]:
    if _number(value) and value > expected:
        yield f"{value!r} is greater than the maximum of {expected!r}"


def _min_length(value: object, expected: int) -> Iterator[str]:
    if isinstance(value, str) and len(value) < expected:
        yield f"{value!r} {'should be non-empty' if expected == 1 else 'is too short'}"


def _min_items(value: object, expected: int) -> Iterator[str]:
    if isinstance(value, list) and len(value) < expected:
        yield f"{value!r} {'should be non-empty' if expected == 1 else 'is too short'}"


def _max_items(value: object, expected: int) -> Iterator[str]:
    if isinstance(value, list) and len(value) > expected:
        yield f"{value!r} {'is expected to be empty' if expected == 0 else 'is too long'}"


_CHECKS = {"type": _type, "required": _required, "enum": _enum, "pattern": _pattern, "minimum": _minimum,
           "maximum": _maximum, "minLength": _min_length, "minItems": _min_items, "maxItems": _max_items}
