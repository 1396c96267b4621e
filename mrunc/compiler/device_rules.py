"""The v1 devices controller's rule semantics, emulated at compile time, so that v2's device program (and the
plan's readable rule table) decides exactly as v1's devices.allow/deny files do for the same config.

The v1 kernel keeps a default (allow or deny every device) and a list of exceptions, each a type, major and minor
('*' a wildcard) with access bits. A rule of type 'a' sets the default and empties the list. Any other rule whose
verdict differs from the default adds its access bits to the exception with the same type, major and minor (so
'allow c 1:3 r' then 'allow c 1:3 w' is one exception, 'c 1:3 rw'); one whose verdict is the default's takes its
bits away from that exception. A request is then allowed, with a deny default, if one exception holds all its
accesses; with an allow default, unless some exception holds any of them (security/device_cgroup.c).

v1 silently ignores a rule that would take access away from a narrower device than a wildcard exception holds
(deny 'c 1:3 w' after allow 'c *:* rw'); runc refuses such a config, and so does mrunc, naming the rule.
"""

from mrunc.compiler.errors import ConfigError

ACCESS_ORDER = "rwm"
Rule = tuple[bool, str, int | None, int | None, str, str]  # allow, type, major, minor, access, source pointer


# Plain classes, not dataclasses: building a dataclass at import costs ~1.5 ms of every compile.
class DeviceException:
    def __init__(self, kind: str, major: int | None, minor: int | None, access: str, sources: list[str]) -> None:
        self.kind = kind  # 'c' or 'b'
        self.major = major  # None: any
        self.minor = minor
        self.access = access  # a subset of 'rwm', in that order
        self.sources = sources  # the rules that added or took away bits


class DeviceRules:
    """The controller's state after every rule: the default verdict, and the exceptions in the kernel's order."""

    def __init__(self, default_allow: bool = True,  # a new cgroup inherits its parent's: the host's root allows all
                 default_src: str = "the parent cgroup's default (the root's: allow all)") -> None:
        self.default_allow = default_allow
        self.default_src = default_src
        self.exceptions: list[DeviceException] = []

    def lines(self) -> list[str]:
        """As v1's devices.allow/deny would take them, checked top down (the first match decides), then the
        default; each with the config fields it came from."""
        verdict = "deny" if self.default_allow else "allow"
        out = [f"{verdict} {text(e.kind, e.major, e.minor, e.access)}  # {', '.join(e.sources)}"
               for e in self.exceptions]
        return out + [f"{'allow' if self.default_allow else 'deny'} a  # {self.default_src}"]


def emulate(rules: list[Rule]) -> DeviceRules:
    state = DeviceRules()
    for allow, kind, major, minor, access, src in rules:
        if kind == "a":
            state = DeviceRules(allow, src)
        elif allow == state.default_allow:
            _take_away(state, kind, major, minor, access, src)
        elif access:
            _add(state, kind, major, minor, access, src)
    return state


def _add(state: DeviceRules, kind: str, major: int | None, minor: int | None, access: str, src: str) -> None:
    same = _find(state, kind, major, minor)
    if same:
        same.access, same.sources = _bits(same.access + access), [*same.sources, src]
    else:
        state.exceptions.append(DeviceException(kind, major, minor, _bits(access), [src]))


def _take_away(state: DeviceRules, kind: str, major: int | None, minor: int | None, access: str, src: str) -> None:
    for wider in state.exceptions:
        covers = (wider.kind == kind and (wider.major, wider.minor) != (major, minor)
                  and wider.major in (None, major) and wider.minor in (None, minor))
        if covers and set(wider.access) & set(access):
            held = "deny" if state.default_allow else "allow"
            raise ConfigError(src, f"cannot undo {_bits(access)} for {text(kind, major, minor, '')} under the wider "
                              f"'{held} {text(wider.kind, wider.major, wider.minor, wider.access)}' "
                              f"({wider.sources[0]}): v1's devices controller ignores such a rule silently; allowed: "
                              "narrow the wider rule instead, or drop this one")
    same = _find(state, kind, major, minor)
    if same:
        same.access, same.sources = "".join(a for a in same.access if a not in access), [*same.sources, src]
        if not same.access:
            state.exceptions.remove(same)


def _find(state: DeviceRules, kind: str, major: int | None, minor: int | None) -> DeviceException | None:
    return next((e for e in state.exceptions if (e.kind, e.major, e.minor) == (kind, major, minor)), None)


def _bits(access: str) -> str:
    return "".join(a for a in ACCESS_ORDER if a in access)


def text(kind: str, major: int | None, minor: int | None, access: str) -> str:
    """A rule as v1's devices.allow/deny take it ('a' alone means every device, whatever the access)."""
    if kind == "a":
        return "a"
    star = lambda n: "*" if n is None else str(n)  # noqa: E731
    return f"{kind} {star(major)}:{star(minor)} {_bits(access)}".rstrip()
