"""`mrunc pause ID`: freeze every process of a running container (v1 freezer here; cgroup.freeze on v2)."""

from mrunc.commands.common import fail
from mrunc.executor import cgroup_control
from mrunc.state import Container, StateError


def main(options, args: list[str], pause: bool = True) -> int:
    name = "pause" if pause else "resume"
    if len(args) != 1 or args[0].startswith("-"):
        return fail(f"usage: mrunc {name} ID", 2)
    try:
        container = Container(options.root, args[0])
        with container.locked() as state:
            status = container.status(state)
            if status != ("running" if pause else "paused"):
                return fail(f"cannot {name} container {container.id!r}: it is {status}")
            cgroup_control.set_frozen(state["cgroups"], pause)
    except StateError as e:
        return fail(str(e))
    except (OSError, TimeoutError) as e:
        return fail(f"cannot {name} container {args[0]!r}: {e}")
    return 0
