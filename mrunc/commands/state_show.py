"""`mrunc state ID`: the runtime-spec state as JSON (plus rootfs, created, owner, as runc prints)."""

from mrunc.commands.common import fail
from mrunc.executor import jsontext
from mrunc.state import Container, StateError


def main(options, args: list[str]) -> int:
    if len(args) != 1 or args[0].startswith("-"):
        return fail("usage: mrunc state ID", 2)
    try:
        container = Container(options.root, args[0])
        print(jsontext.dumps(container.public(container.load()), indent=2))
    except StateError as e:
        return fail(str(e))
    return 0
