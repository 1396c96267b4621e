"""Properties the OCI runtime spec does not define. The spec says a runtime must not fail on them (config.md:
"Runtimes MUST NOT generate an error if they encounter an unknown property"), so by default each becomes a plan note
with its pointer, and a "did you mean" when it is a near miss of a name the spec defines there (difflib). A near
miss of a security field (noNewPrivilege for noNewPrivileges) leaves the container weaker than its author meant:
the note says so, and `mrunc audit` reports it (control config.unknown-security-field). `compile --strict` (and
create/run --strict) refuse them instead.

Known names are the spec's, generated from its schemas (spec_names.py); difflib is imported only when an unknown
property is found."""

from mrunc.compiler.errors import ConfigError, pointer
from mrunc.compiler.spec_names import SHAPE

# Fields whose absence weakens the container: a typo in one of them silently drops a protection.
SECURITY_FIELDS = {"noNewPrivileges", "capabilities", "bounding", "effective", "permitted", "inheritable", "ambient",
                   "seccomp", "defaultAction", "syscalls", "readonly", "readonlyPaths", "maskedPaths",
                   "apparmorProfile", "selinuxLabel", "namespaces", "uidMappings", "gidMappings", "user", "uid", "gid",
                   "additionalGids", "umask", "devices", "resources", "memory", "pids", "limit", "rlimits",
                   "rootfsPropagation", "mountLabel", "options", "sysctl", "oomScoreAdj", "cgroupsPath"}
SECURITY_NOTE = "a security field: as written it sets nothing"


def __getattr__(name: str) -> object:
    """NOTE, the note's form, which the audit reads back: POINTER: unknown property 'NAME', ignored[; did you mean
    'KNOWN'? ...]. Compiled when first asked for: every compile imports this module, and re (with enum) would cost
    it ms."""
    if name != "NOTE":
        raise AttributeError(name)
    import re

    global NOTE
    NOTE = re.compile(r"^(?P<pointer>/\S*): unknown property '(?P<name>[^']*)', ignored"
                      r"(?:; did you mean '(?P<known>[^']*)'\?(?: (?P<security>" + re.escape(SECURITY_NOTE) + "))?)?")
    return NOTE


class Unknown:
    __slots__ = ("pointer", "name", "known", "allowed")

    def __init__(self, where: str, name: str, known: str | None, allowed: list[str]) -> None:
        self.pointer, self.name, self.known, self.allowed = where, name, known, allowed

    @property
    def security(self) -> bool:
        return self.known in SECURITY_FIELDS

    def text(self) -> str:
        """What was wrong, what is allowed (the note and --strict's refusal say the same)."""
        text = f"unknown property {self.name!r}, ignored"
        if self.known:
            text += f"; did you mean {self.known!r}? " + (SECURITY_NOTE if self.security else "")
        return text.rstrip()


def find(config: object) -> list[Unknown]:
    """Every property of `config` the spec does not define where it stands, in document order."""
    found: list[Unknown] = []
    _walk(config, SHAPE, [], found)
    return found


def _walk(value: object, shape: object, path: list[object], found: list[Unknown]) -> None:
    if shape is None:
        return
    kind, inner = shape  # type: ignore[misc]
    if kind == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, inner, [*path, i], found)
    elif kind == "object" and isinstance(value, dict):
        for name, child in value.items():
            if name in inner:
                _walk(child, inner[name], [*path, name], found)
            else:
                found.append(Unknown(pointer(*path, name), name, _near(name, inner), sorted(inner)))


def _near(name: str, known: dict) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
    if not close and name.lower() in {k.lower(): k for k in known}:
        return {k.lower(): k for k in known}[name.lower()]
    return close[0] if close else None


def refusal(unknown: list[Unknown]) -> list[ConfigError]:
    """--strict: each unknown property as an error, naming what the spec allows there."""
    return [ConfigError(u.pointer, u.text().replace(", ignored", " (--strict refuses it)") + "; allowed here: " +
                        ", ".join(u.allowed)) for u in unknown]
