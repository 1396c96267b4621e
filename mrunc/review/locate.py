"""Where a JSON pointer's value starts in a JSON document's text (its 1-based line), for reports that point a
reader, or a code-scanning tool, at a line of config.json. The standard json module keeps no positions, so this
walks the text once; it is only ever given text that json.loads already accepted."""

import re

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SCALAR = re.compile(r"[^,\]}\s]+")


def lines_of(text: str) -> dict[str, int]:
    """Every pointer in the document ('' for the whole of it) mapped to the line where its value starts."""
    found: dict[str, int] = {}
    _value(text, _WS.match(text, 0).end(), "", found)
    return found


def _value(text: str, pos: int, pointer: str, found: dict[str, int]) -> int:
    found[pointer] = text.count("\n", 0, pos) + 1
    char = text[pos]
    if char == "{":
        return _members(text, pos + 1, "}", pointer, found, keyed=True)
    if char == "[":
        return _members(text, pos + 1, "]", pointer, found, keyed=False)
    match = _STRING.match(text, pos) if char == '"' else _SCALAR.match(text, pos)
    return match.end()


def _members(text: str, pos: int, close: str, pointer: str, found: dict[str, int], keyed: bool) -> int:
    index = 0
    pos = _WS.match(text, pos).end()
    while text[pos] != close:
        if keyed:
            key = _STRING.match(text, pos)
            name = _unquote(key.group())
            pos = _WS.match(text, key.end()).end() + 1  # past ':'
        else:
            name = str(index)
        token = name.replace("~", "~0").replace("/", "~1")
        pos = _value(text, _WS.match(text, pos).end(), f"{pointer}/{token}", found)
        pos = _WS.match(text, pos).end()
        if text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()
        index += 1
    return pos + 1


def _unquote(quoted: str) -> str:
    import json

    return json.loads(quoted)
