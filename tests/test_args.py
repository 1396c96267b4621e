"""mrunc/commands/args.py: the lifecycle commands' hand-made option parser takes runc's spellings."""

import pytest

from mrunc.commands.args import UsageError, parse

FORMATS = ("table", "json")
LIST = {"flags": {"--quiet": "quiet", "-q": "quiet"},
        "valued": {"--format": ("format", FORMATS), "-f": ("format", FORMATS)}, "required": ()}
KILL = {"flags": {"--all": "all", "-a": "all"}, "valued": {}, "required": ("id",), "optional": ("signal",)}


@pytest.mark.parametrize("args, quiet, fmt", [([], False, "table"), (["-q"], True, "table"),
                                              (["--format", "json"], False, "json"), (["--format=json"], False, "json"),
                                              (["-f", "json", "--quiet"], True, "json")])
def test_list_options_in_every_spelling(args, quiet, fmt):
    opts = parse(args, **LIST)
    assert (opts.quiet, opts.format) == (quiet, fmt)


@pytest.mark.parametrize("args, everything, container_id, sig", [
    (["c1"], False, "c1", None), (["c1", "KILL"], False, "c1", "KILL"), (["--all", "c1", "9"], True, "c1", "9"),
    (["c1", "-a", "TERM"], True, "c1", "TERM"), (["--", "c1", "TERM"], False, "c1", "TERM")])
def test_kill_takes_options_anywhere_and_an_optional_signal(args, everything, container_id, sig):
    opts = parse(args, **KILL)
    assert (opts.all, opts.id, opts.signal) == (everything, container_id, sig)


@pytest.mark.parametrize("args, kind, message", [
    (["--format", "yaml"], LIST, "--format: got 'yaml'; allowed: table, json"), (["--format"], LIST, "needs a value"),
    (["-x"], LIST, "unknown option '-x'"), (["extra"], LIST, "unexpected argument 'extra'"),
    ([], KILL, "missing id"), (["c1", "TERM", "more"], KILL, "unexpected argument 'more'"),
    (["-x"], KILL, "unknown option '-x'")])
def test_wrong_arguments_say_what_is_wrong(args, kind, message):
    with pytest.raises(UsageError, match=message):
        parse(args, **kind)


def test_help_is_an_empty_usage_error():
    with pytest.raises(UsageError) as raised:
        parse(["--help"], **KILL)
    assert str(raised.value) == ""
