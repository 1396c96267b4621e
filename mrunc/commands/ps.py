"""`mrunc ps [--format table|json] ID`: the container's processes (json: an array of host pids)."""

import argparse
import json

from mrunc.commands.common import fail
from mrunc.state import Container, StateError, cgroup_procs


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def main(options, args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mrunc ps")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("id")
    opts = p.parse_args(args)
    try:
        state = Container(options.root, opts.id).load()
    except StateError as e:
        return fail(str(e))
    pids = cgroup_procs(state["cgroups"])
    if opts.format == "json":
        print(json.dumps(pids))
    else:
        print(f"{'PID':>8}  CMD")
        for pid in pids:
            print(f"{pid:>8}  {_command(pid)}")
    return 0
