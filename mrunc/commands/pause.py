"""`mrunc pause ID`: freeze every process of a running container (v1 freezer here; cgroup.freeze on v2)."""

import time

from mrunc.commands.common import fail
from mrunc.state import Container, StateError, freezer_file, is_frozen


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
            freezer = freezer_file(state["cgroups"])
            if not freezer:
                return fail(f"cannot {name} container {container.id!r}: its cgroup has no freezer")
            _set(freezer[0], freezer[1] if pause else freezer[2], state["cgroups"], pause)
    except StateError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot {name} container {args[0]!r}: {e.strerror}: {e.filename}")
    return 0


def _set(path: str, value: str, cgroups: list[str], frozen: bool) -> None:
    """Write the freezer and wait until the kernel reports it done (v1 says FREEZING on the way)."""
    with open(path, "w") as f:
        f.write(value)
    deadline = time.monotonic() + 10
    while is_frozen(cgroups) != frozen:
        if time.monotonic() > deadline:
            raise StateError(f"{path}: still not {value} after 10s")
        time.sleep(0.005)
