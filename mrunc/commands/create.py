"""`mrunc create [--bundle DIR] [--pid-file F] [--console-socket SOCK] [--preserve-fds N] [--no-pivot]
[--no-new-keyring] ID`: run the plan up to wait_start, record the state, exit 0 while init waits for start."""

import argparse

from mrunc.commands.common import fd_count
from mrunc.commands.lifecycle import create


def parser(prog: str) -> argparse.ArgumentParser:
    """The options create and run share (runc's names)."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--pid-file")
    p.add_argument("--console-socket")
    p.add_argument("--preserve-fds", type=fd_count, default=0)
    p.add_argument("--no-pivot", action="store_true", help="accepted; mrunc always uses pivot_root")
    p.add_argument("--no-new-keyring", action="store_true", help="accepted; mrunc makes no session keyring")
    p.add_argument("--trace", action="store_true", help="print each op to stderr as it runs")
    p.add_argument("id")
    return p


def main(options, args: list[str]) -> int:
    return create(options, parser("mrunc create").parse_args(args), detach=True)
