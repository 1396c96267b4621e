"""mrunc/commands/args.py: the lifecycle commands' hand-made option parser takes runc's spellings."""

import pytest

from mrunc.commands import exec_container, update
from mrunc.commands.args import UsageError, parse

FORMATS = ("table", "json")
LIST = {"flags": {"--quiet": "quiet", "-q": "quiet"},
        "valued": {"--format": ("format", FORMATS), "-f": ("format", FORMATS)}, "required": ()}
KILL = {"flags": {"--all": "all", "-a": "all"}, "valued": {}, "required": ("id",), "optional": ("signal",)}
EXEC = {"flags": exec_container.FLAGS, "valued": exec_container.VALUED, "required": ("id",),
        "defaults": {"preserve_fds": 0}, "repeated": ("env",), "tail": "args"}
UPDATE = {"flags": {"--plan": "plan", "--trace": "trace"}, "valued": update.VALUED, "required": ("id",)}


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


@pytest.mark.parametrize("args, env, tty, container_id, command", [
    (["--env", "A=1", "-e", "B=2", "c1", "--", "sh", "-c", "x"], ["A=1", "B=2"], False, "c1", ["sh", "-c", "x"]),
    (["-t", "c1", "sh", "--tty", "-e", "X"], [], True, "c1", ["sh", "--tty", "-e", "X"]),  # after ID: the command's
    (["--env=A=1", "--", "c1", "ls"], ["A=1"], False, "c1", ["ls"]), (["c1"], [], False, "c1", [])])
def test_exec_options_come_before_id_and_the_command_keeps_its_own(args, env, tty, container_id, command):
    opts = parse(args, **EXEC)
    assert (opts.env, opts.tty, opts.id, opts.args, opts.preserve_fds) == (env, tty, container_id, command, 0)


def test_exec_preserve_fds_is_0_or_more():
    assert parse(["--preserve-fds", "2", "c1"], **EXEC).preserve_fds == 2
    with pytest.raises(UsageError, match=r"--preserve-fds: -1; allowed: 0 or more"):
        parse(["--preserve-fds", "-1", "c1"], **EXEC)


def test_update_takes_runcs_and_dockers_spelling_of_cpu_shares_and_a_resources_file():
    opts = parse(["--cpu-shares", "512", "-r", "-", "c1", "--pids-limit=5"], **UPDATE)
    assert (opts.cpu_share, opts.resources, opts.pids_limit, opts.id, opts.plan) == ("512", "-", "5", "c1", False)
    assert parse(["--cpu-share", "3", "c1"], **UPDATE).cpu_share == "3"
