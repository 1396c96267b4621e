"""Arguments of the lifecycle commands (state, kill, delete, list, ps, ...), parsed by hand: engines call them
for every container, and argparse (re, gettext, shutil and its compression modules) would cost more than the
command's own work. Options as runc spells them: `--all`, `-a`, `--format json`, `--format=json`, `-f json`;
`--` ends the options; a repeated option (`exec --env`) may collect each value; a command's own arguments after
its positionals (`exec ID CMD ARGS...`) are kept as they are."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable  # noqa: F401 (in the Allowed type, a string)


class UsageError(Exception):
    """Wrong arguments: str() says what; the command answers with it and its usage, status 2 (as argparse)."""


class Options:
    """The parsed arguments: each option's name set to True or its value, positionals by name (or None)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


# What a valued option takes: any text (None), one of some words (the first is the default), or what a function
# makes of the text (it raises ValueError with what is allowed).
Allowed = "tuple[str, ...] | Callable[[str], object] | None"


def parse(args: list[str], flags: dict[str, str], valued: "dict[str, tuple[str, Allowed]]",
          required: tuple[str, ...], optional: tuple[str, ...] = (), defaults: dict[str, object] | None = None,
          repeated: tuple[str, ...] = (), tail: str | None = None) -> Options:
    """`flags`: spelling -> name; `valued`: spelling -> (name, what it allows); positionals `required`, then
    `optional` ones; `defaults` of valued options (else None, or the first of their words). Options may come
    anywhere, as argparse and runc take them, but with `tail`: the list of every argument after the positionals
    (options too, and without a `--` first), as runc's exec takes the command. `repeated`: valued options whose
    values are collected in a list, in order."""
    values: dict[str, object] = {name: False for name in flags.values()}
    values.update({name: allowed[0] if isinstance(allowed, tuple) else None for name, allowed in valued.values()})
    values.update({name: [] for name in repeated})
    values.update(defaults or {})
    positionals: list[str] = []
    rest = list(args)
    after: list[str] = []  # with `tail`: what follows the positionals
    while rest:
        if tail is not None and len(positionals) == len(required) + len(optional):
            after, rest = rest, []
            break
        arg = rest.pop(0)
        if arg == "--":
            positionals += rest
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        if arg in ("-h", "--help"):
            raise UsageError("")
        name, eq, value = arg.partition("=")
        if name in flags and not eq:
            values[flags[name]] = True
        elif name in valued:
            if not eq:
                if not rest:
                    raise UsageError(f"{name} needs a value")
                value = rest.pop(0)
            option, allowed = valued[name]
            if option in repeated:
                values[option].append(_take(name, value, allowed))  # type: ignore[attr-defined]
            else:
                values[option] = _take(name, value, allowed)
        else:
            raise UsageError(f"unknown option {arg!r}")
    if tail is not None:
        after = positionals[len(required) + len(optional):] + after
        del positionals[len(required) + len(optional):]
        values[tail] = after[1:] if after[:1] == ["--"] else after
    if len(positionals) < len(required):
        raise UsageError(f"missing {' '.join(required[len(positionals):])}")
    if len(positionals) > len(required) + len(optional):
        raise UsageError(f"unexpected argument {positionals[len(required) + len(optional)]!r}")
    names = required + optional
    values.update({name: positionals[i] if i < len(positionals) else None for i, name in enumerate(names)})
    return Options(**values)


def _take(name: str, value: str, allowed: "Allowed") -> object:
    if isinstance(allowed, tuple):
        if value not in allowed:
            raise UsageError(f"{name}: got {value!r}; allowed: {', '.join(allowed)}")
        return value
    if allowed is None:
        return value
    try:
        return allowed(value)
    except ValueError as e:
        raise UsageError(f"argument {name}: {e}") from None


def parse_or_status(usage: str, args: list[str], flags: dict[str, str] | None = None,
                    valued: "dict[str, tuple[str, Allowed]] | None" = None, required: tuple[str, ...] = (),
                    optional: tuple[str, ...] = (), defaults: dict[str, object] | None = None,
                    repeated: tuple[str, ...] = (), tail: str | None = None) -> Options | int:
    """The options, or the exit status once the usage was printed: 0 for --help (stdout), 2 for wrong
    arguments (stderr and the --log file, with what was wrong)."""
    try:
        return parse(args, flags or {}, valued or {}, required, optional, defaults, repeated, tail)
    except UsageError as e:
        if not str(e):
            print(usage)
            return 0
        from mrunc.commands.common import fail

        return fail(f"{e}\n{usage}", 2)
