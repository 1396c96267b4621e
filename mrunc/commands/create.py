"""`mrunc create [--bundle DIR] [--pid-file F] [--console-socket SOCK] [--preserve-fds N] [--no-pivot]
[--no-new-keyring] [--strict] ID`: run the plan up to wait_start, record the state, exit 0 while init waits for
start."""

from mrunc.commands.args import Options, parse_or_status
from mrunc.commands.common import preserved_fds
from mrunc.commands.lifecycle import create

USAGE = ("usage: mrunc create [--bundle DIR] [--pid-file F] [--console-socket SOCK] [--preserve-fds N] [--no-pivot] "
         "[--no-new-keyring] [--trace] [--strict] ID")


# The options create and run share (runc's names). --no-pivot: mrunc always uses pivot_root; --no-new-keyring:
# mrunc makes no session keyring (both accepted, as runc's). --trace prints each op to stderr as it runs. --strict
# refuses a config with properties the OCI spec does not define (by default they are plan notes).
FLAGS = {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring", "--trace": "trace", "--strict": "strict"}
VALUED = {"--bundle": ("bundle", None), "-b": ("bundle", None), "--pid-file": ("pid_file", None),
          "--console-socket": ("console_socket", None), "--preserve-fds": ("preserve_fds", preserved_fds)}
DEFAULTS = {"bundle": ".", "preserve_fds": 0}


def parse(usage: str, args: list[str], flags: dict[str, str] | None = None) -> Options | int:
    """create's options (and `flags` more, for run), or the exit status once the usage was printed."""
    return parse_or_status(usage, args, {**FLAGS, **(flags or {})}, VALUED, ("id",), defaults=DEFAULTS)


def main(options, args: list[str]) -> int:
    opts = parse(USAGE, args)
    return opts if isinstance(opts, int) else create(options, opts, detach=True)
