"""`mrunc start ID`: let a created container's init go on to execve; then the poststart hooks."""

from mrunc.commands.common import fail
from mrunc.commands.lifecycle import start
from mrunc.state import Container, StateError


def main(options, args: list[str]) -> int:
    if len(args) != 1 or args[0].startswith("-"):
        return fail("usage: mrunc start ID", 2)
    try:
        container = Container(options.root, args[0])
        with container.locked() as state:
            return start(container, state)
    except StateError as e:
        return fail(str(e))
