"""JSON through the json package's C scanner and encoder alone: `import json` pulls in re and enum, which cost
more than all the work of `mrunc state` or `exec PLAN`. Same results as json.loads and json.dumps (tested);
anything the fast path does not cover goes to the json package, which also words the errors."""

from _json import encode_basestring_ascii, make_encoder, make_scanner


class _ScannerOptions:
    """What json.JSONDecoder would pass to the C scanner: plain dicts, ints and floats; no NaN or Infinity."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not JSON")


_scan = make_scanner(_ScannerOptions())


def loads(raw: bytes | str) -> object:
    """json.loads, strict (no NaN): a malformed text goes to the full decoder, which says where it failed."""
    text = (raw.decode("utf-8") if isinstance(raw, bytes) else raw).strip(" \t\n\r")
    try:
        value, end = _scan(text, 0)
        if end == len(text):
            return value
    except (StopIteration, SystemError):
        pass
    import json

    return json.loads(text)


class _NotPlain(Exception):
    """A value the fast encoder leaves to the json package (floats, tuples, non-str keys, other types)."""


def _refuse(value: object) -> object:
    raise _NotPlain


# json.dumps' defaults: ", " and ": " between items without indent, "," and ": " with it; ASCII only.
_compact = make_encoder({}, _refuse, encode_basestring_ascii, None, ": ", ", ", False, False, True)
_encoders = {(", ", ": "): _compact}


def dumps(value: object, indent: int | None = None, separators: tuple[str, str] | None = None) -> str:
    """json.dumps(value, indent=indent, separators=separators) for what mrunc writes: dicts with str keys, lists,
    str, int, bool, None."""
    try:
        if indent is None:
            key = separators or (", ", ": ")
            if key not in _encoders:
                _encoders[key] = make_encoder({}, _refuse, encode_basestring_ascii, None, key[1], key[0], False,
                                              False, True)
            return "".join(_encoders[key](value, 0))
        if separators is not None:
            raise _NotPlain
        return _indented(value, " " * indent, "\n")
    except _NotPlain:
        import json

        return json.dumps(value, indent=indent, separators=separators)


def _indented(value: object, step: str, newline: str) -> str:
    """json.dumps' layout with an indent (the C encoder has none in 3.11): one item a line, `newline` + `step`
    deeper each level."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None or value is True or value is False:
        return "null" if value is None else "true" if value else "false"
    if type(value) is int:
        return int.__repr__(value)
    inner = newline + step
    if type(value) is list:
        if not value:
            return "[]"
        return "[" + inner + ("," + inner).join(_indented(v, step, inner) for v in value) + newline + "]"
    if type(value) is dict and all(type(k) is str for k in value):
        if not value:
            return "{}"
        items = (encode_basestring_ascii(k) + ": " + _indented(v, step, inner) for k, v in value.items())
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    raise _NotPlain
