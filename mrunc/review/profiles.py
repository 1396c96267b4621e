"""Profiles: which controls an audit enforces. `baseline` and `restricted` follow the Pod Security Standards;
a profile file (JSON, or TOML when its name ends in .toml) extends one of them, adds controls, waives others:

    extends = "baseline"                      # or "restricted"
    add = ["resources.no-memory-limit"]
    [waive]
    "host-ns.network" = "podman joins a network namespace it made for this container"
"""

import json
import tomllib
from dataclasses import dataclass, field

from mrunc.review.controls import BY_ID, CONTROLS

LEVELS = {"baseline": ("baseline",), "restricted": ("baseline", "restricted")}
FILE_KEYS = ("extends", "add", "waive")


class ProfileError(Exception):
    """A profile file the audit cannot use: where (JSON pointer), what was wrong, what is allowed."""


@dataclass
class Profile:
    name: str
    controls: list[str]
    waived: dict[str, str] = field(default_factory=dict)  # control id -> the team's reason


def builtin(name: str) -> Profile:
    return Profile(name, [c.id for c in CONTROLS if c.level in LEVELS[name]])


def load(spec: str) -> Profile:
    """`baseline`, `restricted`, or the path of a profile file."""
    if spec in LEVELS:
        return builtin(spec)
    try:
        with open(spec, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ProfileError(f"{spec}: cannot read profile: {e.strerror}; allowed: baseline, restricted, "
                           "or a JSON/TOML profile file") from None
    try:
        data = tomllib.loads(raw.decode()) if spec.endswith(".toml") else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProfileError(f"{spec}: /: not a {'TOML' if spec.endswith('.toml') else 'JSON'} profile: {e}") from None
    return _from_data(spec, data)


def _from_data(spec: str, data: object) -> Profile:
    def error(pointer: str, problem: str) -> ProfileError:
        return ProfileError(f"{spec}: {pointer}: {problem}")

    if not isinstance(data, dict):
        raise error("/", f"expected an object with {', '.join(FILE_KEYS)}")
    for key in data:
        if key not in FILE_KEYS:
            raise error(f"/{key}", f"unknown key; allowed: {', '.join(FILE_KEYS)}")
    base = data.get("extends", "baseline")
    if base not in LEVELS:
        raise error("/extends", f"got {base!r}; allowed: {', '.join(LEVELS)}")
    profile = builtin(base)
    profile.name = spec
    add = data.get("add", [])
    if not isinstance(add, list):
        raise error("/add", "expected a list of control ids")
    for i, control in enumerate(add):
        _known(error, f"/add/{i}", control)
        if control not in profile.controls:
            profile.controls.append(control)
    waive = data.get("waive", {})
    if isinstance(waive, list):
        waive = {control: "waived by the profile" for control in waive}
    if not isinstance(waive, dict):
        raise error("/waive", "expected a table of control id -> reason (or a list of control ids)")
    for control, reason in waive.items():
        _known(error, f"/waive/{control}", control)
        if not isinstance(reason, str) or not reason.strip():
            raise error(f"/waive/{control}", "expected the reason for the waiver, as text")
        profile.waived[control] = reason
    return profile


def _known(error, pointer: str, control: object) -> None:
    if control not in BY_ID:
        raise error(pointer, f"unknown control {control!r}; allowed: {', '.join(BY_ID)}")
