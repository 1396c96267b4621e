"""`mrunc list [-q] [--format table|json]`: the containers under --root."""

import argparse
import json

from mrunc.state import Container, StateError, list_ids


def main(options, args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mrunc list")
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    opts = p.parse_args(args)
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
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "   " + r[-1])
    return 0
