"""Read config.json and validate it against mrunc's trimmed OCI schema (schemas/config.schema.json)."""

import json
import os

import jsonschema

from mrunc import schemas
from mrunc.compiler.errors import ConfigError, ConfigErrors, pointer

MAX_ERRORS = 20


def schema() -> dict:
    with open(os.path.join(os.path.dirname(schemas.__file__), "config.schema.json")) as f:
        return json.load(f)


def parse(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("/", f"not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise ConfigError("/", f"contains a NUL byte at offset {text.index(chr(0))}; JSON text may not")
    try:
        config = json.loads(text)
        _refuse_nul(config, ())
    except RecursionError:
        raise ConfigError("/", "nested too deeply to be a config") from None
    except json.JSONDecodeError as e:
        raise ConfigError("/", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return config


def _refuse_nul(value: object, path: tuple) -> None:
    """A JSON \\u0000 escape decodes to NUL, which no path, name, argument or environment entry may hold: the
    kernel would cut the string short there."""
    if isinstance(value, str) and "\x00" in value:
        raise ConfigError(pointer(*path), f"got {value!r}; allowed: strings without NUL (\\u0000)")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            raise ConfigError(pointer(*path), f"key {key!r}; allowed: keys without NUL (\\u0000)")
        _refuse_nul(item, (*path, key))


def validate(config: object) -> None:
    """Raise ConfigErrors listing every schema violation, each with its pointer and what is allowed."""
    validator = jsonschema.Draft4Validator(schema())
    found = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if found:
        raise ConfigErrors([_explain(e) for e in found[:MAX_ERRORS]])


def _explain(error: jsonschema.ValidationError) -> ConfigError:
    where = pointer(*error.absolute_path)
    got = json.dumps(error.instance)
    if len(got) > 60:
        got = got[:57] + "..."
    allowed = {
        "type": lambda v: f"allowed: {v if isinstance(v, str) else ' or '.join(v)}",
        "enum": lambda v: "allowed: " + ", ".join(json.dumps(x) for x in v),
        "pattern": lambda v: f"allowed: strings matching {v}",
        "minimum": lambda v: f"allowed: at least {v}",
        "maximum": lambda v: f"allowed: at most {v}",
        "required": lambda v: f"required: {', '.join(v)}",
        "maxItems": lambda v: f"allowed: at most {v} items",
        "minItems": lambda v: f"allowed: at least {v} items",
        "minLength": lambda v: f"allowed: at least {v} characters",
        "additionalProperties": lambda v: "allowed: no other properties",
    }.get(error.validator, lambda v: f"{error.validator}: {v}")(error.validator_value)
    if error.validator == "required":
        return ConfigError(where, f"{error.message}; {allowed}")
    return ConfigError(where, f"got {got}; {allowed}")
