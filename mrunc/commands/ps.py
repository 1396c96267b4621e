"""`mrunc ps [--format table|json] ID`: the container's processes (json: an array of host pids)."""

from mrunc.commands.args import parse_or_status
from mrunc.commands.common import fail
from mrunc.executor import jsontext
from mrunc.state import Container, StateError, cgroup_procs


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def main(options, args: list[str]) -> int:
    formats = ("table", "json")
    opts = parse_or_status("usage: mrunc ps [--format table|json] ID", args,
                           valued={"--format": ("format", formats), "-f": ("format", formats)}, required=("id",))
    if isinstance(opts, int):
        return opts
    try:
        state = Container(options.root, opts.id).load()
    except StateError as e:
        return fail(str(e))
    pids = cgroup_procs(state["cgroups"])
    if opts.format == "json":
        print(jsontext.dumps(pids))
    else:
        print(f"{'PID':>8}  CMD")
        for pid in pids:
            print(f"{pid:>8}  {_command(pid)}")
    return 0
