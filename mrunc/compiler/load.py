"""Read config.json and validate it against mrunc's trimmed OCI schema (schemas/config.schema.json)."""

import os

from mrunc import schemas
from mrunc.compiler.errors import ConfigError, ConfigErrors, pointer
from mrunc.compiler.parse import parse  # noqa: F401 (load.parse, as before)
from mrunc.schemas import valid_config

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~1.5 ms of every compile); type checkers
if TYPE_CHECKING:      # read the name the same way
    import jsonschema

MAX_ERRORS = 20


def schema() -> dict:
    import json  # here: a valid config needs neither json (re, enum) nor the schema

    with open(os.path.join(os.path.dirname(schemas.__file__), "config.schema.json")) as f:
        return json.load(f)


def validate(config: object) -> None:
    """Raise ConfigErrors listing every schema violation, each with its pointer and what is allowed.
    The generated validator (schemas/valid_config.py) answers first, in well under a millisecond; jsonschema,
    the validator of record, runs only on a refusal, to find and explain every violation (its import alone is
    ~90 ms, most of a compile)."""
    if valid_config.is_valid(config):
        return
    import jsonschema

    validator = jsonschema.Draft4Validator(schema())
    found = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if found:
        raise ConfigErrors([_explain(e) for e in found[:MAX_ERRORS]])


def _explain(error: "jsonschema.ValidationError") -> ConfigError:
    import json

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
