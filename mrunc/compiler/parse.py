"""Parse a JSON document (a config or a process): standard library only, so `mrunc exec ID` can use it."""

from mrunc.compiler.errors import ConfigError, pointer
from mrunc.executor import jsontext


def parse(raw: bytes, what: str = "a config") -> object:
    """JSON text as a value; raises ConfigError for what no config or process may be: not UTF-8, a NUL byte
    anywhere, invalid JSON, nesting past the recursion limit."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("/", f"not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise ConfigError("/", f"contains a NUL byte at offset {text.index(chr(0))}; JSON text may not")
    try:
        config = _loads(text)
        _refuse_nul(config, ())
    except RecursionError:
        raise ConfigError("/", f"nested too deeply to be {what}") from None
    except ValueError as e:
        import json

        if not isinstance(e, json.JSONDecodeError):
            raise
        raise ConfigError("/", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return config


def _loads(text: str) -> object:
    """json.loads(text): by json's C scanner alone where it can (the json package imports re and enum, ~8 ms of a
    compile), else by json.loads, whose result (NaN, Infinity) or error (with its position) it then is."""
    try:
        return jsontext.loads(text)
    except ValueError:
        import json

        return json.loads(text)


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
