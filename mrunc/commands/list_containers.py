"""`mrunc list [-q] [--format table|json]`: the containers under --root."""

import os

from mrunc.commands.args import parse_or_status
from mrunc.executor import jsontext
from mrunc.state import Container, DamagedState, StateError, list_entries, valid_id

USAGE = "usage: mrunc list [-q] [--format table|json]"
FORMATS = ("table", "json")  # the first is the default


def main(options, args: list[str]) -> int:
    opts = parse_or_status(USAGE, args, {"--quiet": "quiet", "-q": "quiet"},
                           {"--format": ("format", FORMATS), "-f": ("format", FORMATS)})
    if isinstance(opts, int):
        return opts
    try:
        names = list_entries(options.root)
    except StateError as e:
        from mrunc.commands.common import fail

        return fail(str(e))
    states = []
    for name in names:
        state = _load(options.root, name)
        if state is not None:
            states.append(state)
    if opts.quiet:
        print("".join(f"{s['id']}\n" for s in states), end="")
    elif opts.format == "json":
        print(jsontext.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "   " + r[-1])
    return 0


def _load(root: str, name: str) -> dict | None:
    """The public state of ROOT/NAME; None, after one warning naming the directory and what is wrong, for an entry
    that is not a usable mrunc container (as runc's list warns "load container ..." and lists the rest)."""
    from mrunc import log

    if not valid_id(name):
        log.warning(f"{os.path.join(root, name)}: not a container's state directory (invalid container id); skipped")
        return None
    container = Container(root, name)
    try:
        return container.public(container.load())
    except DamagedState as e:
        if not container.being_created():  # a create holds the lock until its state.json is written
            log.warning(f"{e}; skipped")
    except StateError:  # deleted while we looked
        pass
    return None
