"""`mrunc list [-q] [--format table|json]`: the containers under --root."""

from mrunc.commands.args import parse_or_status
from mrunc.executor import jsontext
from mrunc.state import Container, StateError, list_ids

USAGE = "usage: mrunc list [-q] [--format table|json]"
FORMATS = ("table", "json")  # the first is the default


def main(options, args: list[str]) -> int:
    opts = parse_or_status(USAGE, args, {"--quiet": "quiet", "-q": "quiet"},
                           {"--format": ("format", FORMATS), "-f": ("format", FORMATS)})
    if isinstance(opts, int):
        return opts
    states = []
    for container_id in list_ids(options.root):
        container = Container(options.root, container_id)
        try:
            states.append(container.public(container.load()))
        except StateError:  # deleted while we looked
            continue
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
