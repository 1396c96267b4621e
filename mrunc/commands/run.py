"""`mrunc run [--detach] [--bundle DIR] [--pid-file F] [--console-socket SOCK] ID`: create and start; in the
foreground, wait for the container, exit with its status and delete it (as runc run)."""

from mrunc.commands.create import USAGE, parse
from mrunc.commands.lifecycle import create, start
from mrunc.state import Container, StateError


def main(options, args: list[str]) -> int:
    opts = parse(USAGE.replace("mrunc create", "mrunc run [--detach]"), args, {"--detach": "detach", "-d": "detach"})
    if isinstance(opts, int):
        return opts
    status = create(options, opts, detach=opts.detach)
    if not opts.detach or status:
        return status
    container = Container(options.root, opts.id)
    try:
        with container.locked() as state:
            return start(container, state)
    except StateError as e:  # deleted meanwhile
        from mrunc.commands.common import fail

        return fail(str(e))
