"""Generate mrunc/schemas/valid_config.py from mrunc/schemas/config.schema.json:
`python -m mrunc.tools.gen_validator` (from the repository root); `--check` writes nothing and exits 1 if the
checked-in module is not what the schema and the template give now (tests/test_valid_config.py runs it).

The module answers one question, is the config valid, as jsonschema's Draft4Validator would, with the standard
library only: compile then need not import jsonschema (~90 ms) for a valid config. jsonschema stays the
validator of record and explains every refusal (load.validate). The generator handles exactly the Draft 4
keywords the trimmed schema uses, with jsonschema's semantics, and refuses any other keyword, so a schema edit
cannot make the two disagree silently.
"""

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "mrunc" / "schemas" / "config.schema.json"
MODULE = REPO / "mrunc" / "schemas" / "valid_config.py"
TEMPLATE = "valid_config.py.j2"

VALIDATING = {"type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems",
              "items", "required", "properties", "additionalProperties", "$ref"}
ANNOTATIONS = {"$schema", "title", "description", "definitions"}  # jsonschema checks nothing with these
TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


class UnsupportedSchema(Exception):
    """The schema uses what the generator does not translate: extend it (and its tests) first."""


@dataclass
class Node:
    """One subschema, rendered as one function `name(x) -> bool`."""

    name: str
    where: str  # its JSON pointer in the schema, for the reader of the generated code
    ref: str | None = None  # Draft 4: a $ref replaces its siblings (jsonschema's ignore_ref_siblings)
    types: list[str] = field(default_factory=list)
    enum: list[str] | None = None
    patterns: list[str] = field(default_factory=list)
    string_bounds: dict[str, int] = field(default_factory=dict)  # minLength, maxLength
    number_bounds: dict[str, int | float] = field(default_factory=dict)  # minimum, maximum
    array_bounds: dict[str, int] = field(default_factory=dict)  # minItems, maxItems
    items: "Node | None" = None
    required: list[str] = field(default_factory=list)
    properties: list[tuple[str, "Node"]] = field(default_factory=list)
    closed: bool = False  # additionalProperties: false
    additional: "Node | None" = None  # additionalProperties: a schema
    function: bool = True  # False: its parent tests it inline (a $ref or a type alone), it has no function

    def checks_only_type(self) -> bool:
        return not (self.enum is not None or self.patterns or self.string_bounds or self.number_bounds or
                    self.array_bounds or self.items or self.required or self.properties or self.closed or
                    self.additional)


class Generator:
    def __init__(self, schema: dict) -> None:
        self.schema = schema
        self.nodes: list[Node] = []
        self.definitions = {name: f"_def_{name}" for name in schema.get("definitions", {})}

    def run(self) -> list[Node]:
        self.node(self.schema, "is_valid", "#")
        for name, sub in self.schema.get("definitions", {}).items():
            self.node(sub, self.definitions[name], f"#/definitions/{name}")
        return self.nodes

    def node(self, schema: object, name: str, where: str, inline: bool = False) -> Node:
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"{where}: a schema that is not an object")
        unknown = set(schema) - VALIDATING - ANNOTATIONS
        if unknown:
            raise UnsupportedSchema(f"{where}: keywords {sorted(unknown)}")
        node = Node(name, where)
        self.nodes.append(node)
        if "$ref" in schema:
            node.ref = self.ref(schema["$ref"], where)
            node.function = not inline
            return node
        node.types = self.types(schema.get("type", []), where)
        if "enum" in schema:
            if not all(isinstance(v, str) for v in schema["enum"]):
                raise UnsupportedSchema(f"{where}/enum: values other than strings (jsonschema's bool/int equality)")
            node.enum = schema["enum"]
        if "pattern" in schema:
            node.patterns.append(schema["pattern"])
        node.string_bounds = self.bounds(schema, ("minLength", "maxLength"), int, where)
        node.number_bounds = self.bounds(schema, ("minimum", "maximum"), (int, float), where)
        node.array_bounds = self.bounds(schema, ("minItems", "maxItems"), int, where)
        if "items" in schema:
            node.items = self.node(schema["items"], f"{name}_items", f"{where}/items", inline=True)
        node.required = list(schema.get("required", []))
        for key, sub in schema.get("properties", {}).items():
            where_sub = f"{where}/properties/{key}"
            node.properties.append((key, self.node(sub, f"{name}_{self.identifier(key)}", where_sub, inline=True)))
        additional = schema.get("additionalProperties", True)
        if additional is False:
            node.closed = True
        elif isinstance(additional, dict):
            node.additional = self.node(additional, f"{name}_any", f"{where}/additionalProperties", inline=True)
        elif additional is not True:
            raise UnsupportedSchema(f"{where}/additionalProperties: {additional!r}")
        node.function = not (inline and node.checks_only_type())
        return node

    def ref(self, ref: str, where: str) -> str:
        prefix = "#/definitions/"
        if not ref.startswith(prefix) or ref[len(prefix):] not in self.definitions:
            raise UnsupportedSchema(f"{where}/$ref: {ref} (only #/definitions/NAME)")
        return self.definitions[ref[len(prefix):]]

    @staticmethod
    def types(types: object, where: str) -> list[str]:
        listed = [types] if isinstance(types, str) else types
        if not isinstance(listed, list) or not set(listed) <= TYPES:
            raise UnsupportedSchema(f"{where}/type: {types!r}")
        return listed

    @staticmethod
    def bounds(schema: dict, keys: tuple[str, str], kind: type | tuple, where: str) -> dict:
        found = {k: schema[k] for k in keys if k in schema}
        for key, value in found.items():
            if not isinstance(value, kind) or isinstance(value, bool):
                raise UnsupportedSchema(f"{where}/{key}: {value!r}")
        return found

    @staticmethod
    def identifier(key: str) -> str:
        return "".join(c if c.isalnum() else "_" for c in key)


# --- patterns: jsonschema runs re.search(pattern, string); importing re (with enum) is ~5 ms of every compile, so
# an anchored pattern made of character classes, each repeated or not, becomes a list of steps matched greedily.
# Greedy is what re finds only when no repeat could give back a character the next step wants: a repeat of
# varying count must be last, or before $, or before a fixed step whose class it cannot match. Any other pattern
# stays a regular expression (the module then imports re the first time it needs it).

@dataclass(frozen=True)
class CharClass:
    negate: bool
    ranges: tuple[tuple[int, int], ...]  # code points, inclusive

    def chars(self) -> set[int] | None:
        """Every code point it matches, if it is a small set; None for a negated class."""
        if self.negate:
            return None
        return {c for low, high in self.ranges for c in range(low, high + 1)}

    def disjoint(self, other: "CharClass") -> bool:
        mine, theirs = self.chars(), other.chars()
        if mine is not None and theirs is not None:
            return not mine & theirs
        if mine is None and theirs is None:
            return False  # two negated classes share all but a few characters
        small, negated = (theirs, self) if mine is None else (mine, other)
        assert small is not None
        return all(any(low <= c <= high for low, high in negated.ranges) for c in small)


@dataclass(frozen=True)
class Step:
    chars: CharClass
    low: int
    high: int | None  # None: no upper bound


@dataclass(frozen=True)
class Alternative:
    steps: tuple[Step, ...]
    to_end: bool  # ends with $: at the end of the string or before a newline that ends it


def anchored_pattern(pattern: str) -> tuple[Alternative, ...] | None:
    """The steps of each alternative of `pattern`, or None where steps would not find what re.search finds."""
    from re import _constants as c
    from re import _parser

    items = list(_parser.parse(pattern))
    branches = [items]
    if items and items[-1][0] is c.BRANCH:  # ^a|^b parses as ^ then a branch of the rests
        branches = [items[:-1] + list(b) for b in items[-1][1][1]]
    alternatives = []
    for branch in branches:
        if not branch or branch[0] != (c.AT, c.AT_BEGINNING):
            return None
        to_end = branch[-1] == (c.AT, c.AT_END)
        steps = [_step(item, c) for item in branch[1:len(branch) - to_end]]
        if None in steps or not _greedy_is_exact(steps):  # type: ignore[arg-type]
            return None
        alternatives.append(Alternative(tuple(steps), to_end))  # type: ignore[arg-type]
    return tuple(alternatives)


def _step(item: tuple, c) -> Step | None:
    kind, value = item
    if kind is c.MAX_REPEAT:
        low, high, (inner, *rest) = value
        chars = None if rest else _class(inner, c)
        return Step(chars, low, None if high is c.MAXREPEAT else high) if chars else None
    chars = _class(item, c)
    return Step(chars, 1, 1) if chars else None


def _class(item: tuple, c) -> CharClass | None:
    kind, value = item
    if kind is c.LITERAL or kind is c.NOT_LITERAL:
        return CharClass(kind is c.NOT_LITERAL, ((value, value),))
    if kind is not c.IN:
        return None  # ., \d, \w...: not translated (their Unicode meaning is re's to say)
    negate = bool(value) and value[0] == (c.NEGATE, None)
    ranges = []
    for member, arg in value[negate:]:
        if member is c.LITERAL:
            ranges.append((arg, arg))
        elif member is c.RANGE:
            ranges.append(arg)
        else:
            return None
    return CharClass(negate, tuple(ranges))


def _greedy_is_exact(steps: list[Step]) -> bool:
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        if step.low == step.high:
            continue
        if following is not None and (following.low != following.high or not step.chars.disjoint(following.chars)):
            return False
    return True


def python_set(keys: Iterable[str]) -> str:
    listed = list(keys)
    return "{" + ", ".join(map(repr, listed)) + "}" if listed else "set()"


def render(schema: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mrunc", "templates"), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["py"] = repr
    env.filters["pyset"] = python_set
    nodes = Generator(schema).run()
    patterns = pattern_names(nodes)
    return env.get_template(TEMPLATE).render(nodes=nodes, patterns=patterns,
                                             steps={p: anchored_pattern(p) for p in patterns})


def pattern_names(nodes: list[Node]) -> dict[str, str]:
    """Each pattern of the schema -> the name of its matcher in the generated module."""
    return {p: f"_P{i}" for i, p in enumerate(sorted({p for n in nodes for p in n.patterns}))}


def main(argv: list[str]) -> int:
    text = render(json.loads(SCHEMA.read_text()))
    if "--check" in argv:
        if MODULE.read_text() != text:
            print(f"{MODULE.relative_to(REPO)} is not current: run python -m mrunc.tools.gen_validator",
                  file=sys.stderr)
            return 1
        return 0
    MODULE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
