"""Arguments of the lifecycle commands (state, kill, delete, list, ps, ...), parsed by hand: engines call them
for every container, and argparse (re, gettext, shutil and its compression modules) would cost more than the
command's own work. Options as runc spells them: `--all`, `-a`, `--format json`, `--format=json`, `-f json`;
`--` ends the options."""


class UsageError(Exception):
    """Wrong arguments: str() says what; the command answers with it and its usage, status 2 (as argparse)."""


class Options:
    """The parsed arguments: each option's name set to True or its value, positionals by name (or None)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def parse(args: list[str], flags: dict[str, str], valued: dict[str, tuple[str, tuple[str, ...]]],
          required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Options:
    """`flags`: spelling -> name; `valued`: spelling -> (name, allowed values); positionals `required`, then
    `optional` ones. Options may come anywhere, as argparse and runc take them."""
    values: dict[str, object] = {name: False for name in flags.values()}
    values.update({name: choices[0] for name, choices in valued.values()})
    positionals: list[str] = []
    rest = list(args)
    while rest:
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
            option, choices = valued[name]
            if value not in choices:
                raise UsageError(f"{name}: got {value!r}; allowed: {', '.join(choices)}")
            values[option] = value
        else:
            raise UsageError(f"unknown option {arg!r}")
    if len(positionals) < len(required):
        raise UsageError(f"missing {' '.join(required[len(positionals):])}")
    if len(positionals) > len(required) + len(optional):
        raise UsageError(f"unexpected argument {positionals[len(required) + len(optional)]!r}")
    names = required + optional
    values.update({name: positionals[i] if i < len(positionals) else None for i, name in enumerate(names)})
    return Options(**values)


def parse_or_status(usage: str, args: list[str], flags: dict[str, str] | None = None,
                    valued: dict[str, tuple[str, tuple[str, ...]]] | None = None, required: tuple[str, ...] = (),
                    optional: tuple[str, ...] = ()) -> Options | int:
    """The options, or the exit status once the usage was printed: 0 for --help (stdout), 2 for wrong
    arguments (stderr and the --log file, with what was wrong)."""
    try:
        return parse(args, flags or {}, valued or {}, required, optional)
    except UsageError as e:
        if not str(e):
            print(usage)
            return 0
        from mrunc.commands.common import fail

        return fail(f"{e}\n{usage}", 2)
