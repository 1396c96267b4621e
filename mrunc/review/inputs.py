"""What a review reads: a plan, or a config (compiled first). Either way the plan, and the config when at hand
(so findings point into it): a config given directly, or the bundle's config.json if the plan's digest matches."""

import hashlib
import json
import os
from dataclasses import dataclass

from mrunc.executor.plan import FORMAT, PlanError, check_structure


class InputError(Exception):
    """A file a review cannot read as a plan or a config; the message says which and why."""


@dataclass
class Subject:
    path: str
    plan: dict
    config: dict | None  # None: not at hand (pointers are the plan's, unchecked)
    note: str  # how the config was found, for the report
    config_file: str | None = None  # where the config was read, when at hand
    config_text: str | None = None  # its text (reports that point at lines read it)


def load(path: str) -> Subject:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and "format" in data and "ops" in data:
        if data["format"] != FORMAT:
            raise InputError(f"{path}: /format: unknown plan format {data['format']!r}; this mrunc reads {FORMAT!r}")
        return _plan(path, data)
    return _config(path, raw)


def _plan(path: str, plan: dict) -> Subject:
    try:
        check_structure(plan)
    except PlanError as e:
        raise InputError(f"{path}: not a valid plan: {e}") from None
    config_path = os.path.join(str(plan.get("bundle")), "config.json")
    try:
        with open(config_path, "rb") as f:
            raw = f.read()
    except OSError:
        return Subject(path, plan, None, f"config not at hand ({config_path} unreadable)")
    if hashlib.sha256(raw).hexdigest() != plan["config_sha256"]:
        return Subject(path, plan, None, f"config not used: {config_path} changed since the plan was compiled")
    return Subject(path, plan, json.loads(raw), f"config {config_path}", config_path, raw.decode())


def _config(path: str, raw: bytes) -> Subject:
    from mrunc.compiler.compile import compile_bytes
    from mrunc.compiler.errors import ConfigError, ConfigErrors

    try:
        plan = compile_bytes(raw, os.path.dirname(os.path.abspath(path)))
    except (ConfigError, ConfigErrors) as e:
        raise InputError(f"{path}: neither a plan nor a valid config:\n  " + str(e).replace("\n", "\n  ")) from None
    return Subject(path, plan, json.loads(raw), f"config {path}, compiled for this host", path, raw.decode())


def existing_pointer(config: dict | None, pointer: str) -> str:
    """The longest prefix of `pointer` that exists in the config ('/' for the whole document)."""
    if config is None:
        return pointer
    node: object = config
    kept: list[str] = []
    for part in pointer.split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            break
        kept.append(part)
    return "/" + "/".join(kept)
