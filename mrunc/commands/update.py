"""`mrunc update [-r FILE|-] [--memory N] [--cpu-quota N] ... ID`: change a running container's resources, as
runc update does (docker update, podman update and containerd's UpdateContainerResources call it). The
resources, from the file (every flag ignored then, as runc) or the flags, are checked like the config's
linux.resources section and compiled into a plan of cgroup writes (compiler/compile_update.py; --plan prints
it); once it ran, state.json keeps the resources in force and ROOT/ID/in-force.json the container's plan with
them, for `mrunc diff ROOT/ID/plan.json ROOT/ID/in-force.json` and `mrunc audit ROOT/ID/in-force.json`.
A stopped container is refused ("container not running"), as runc refuses it; a paused one is updated, as runc's.

Its options are read by mrunc/commands/args.py, not argparse: engines call update on live containers."""

import re
import sys

from mrunc.commands.args import Options, parse_or_status
from mrunc.commands.common import fail

# flag -> (section, field, parse); memory sizes take runc's units (100m, 1g: powers of 1024) or -1
MEMORY_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
FLAGS = {
    "--memory": ("memory", "limit", "size"), "--memory-reservation": ("memory", "reservation", "size"),
    "--memory-swap": ("memory", "swap", "size"), "--kernel-memory": ("memory", "kernel", "size"),
    "--kernel-memory-tcp": ("memory", "kernelTCP", "size"),
    "--cpu-share": ("cpu", "shares", "uint"), "--cpu-quota": ("cpu", "quota", "int"),
    "--cpu-period": ("cpu", "period", "uint"), "--cpu-rt-period": ("cpu", "realtimePeriod", "uint"),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"), "--cpuset-cpus": ("cpu", "cpus", "str"),
    "--cpuset-mems": ("cpu", "mems", "str"), "--blkio-weight": ("blockIO", "weight", "weight"),
    "--pids-limit": ("pids", "limit", "int"),
}
ALLOWED = {"size": "a size in bytes (units k, m, g, t, p: powers of 1024) or -1", "uint": "a number, 0 or more",
           "int": "a number (-1: no limit)",
           # runc's update: "range is from 10 to 1000"; 0 leaves the weight as it is (runc sets none for 0)
           "weight": "a number from 10 to 1000, or 0 to leave the weight as it is"}
BLKIO_WEIGHTS = range(10, 1001)


def _usage() -> str:
    lines, line = [], "   "
    for flag in [*FLAGS, "--cpu-shares"]:
        if len(line) + len(flag) > 100:
            lines.append(line)
            line = "   "
        line += " " + flag
    return "\n".join([
        "usage: mrunc update [-r|--resources FILE|-] [--plan] [--trace] [LIMIT VALUE]... ID",
        "  -r, --resources FILE|-  a LinuxResources JSON document (-: standard input); the limit flags are ignored",
        "  --plan                  print the update plan as text instead of running it",
        "  --trace                 print each op to stderr as it runs",
        "  limits (--cpu-shares is --cpu-share; sizes take k, m, g, t, p; --blkio-weight 10 to 1000, 0: unchanged):",
        *lines, line,
        "  --l3-cache-schema S, --mem-bw-schema S: Intel RDT, refused (no resctrl here)"])


USAGE = _usage()
VALUED = {"--resources": ("resources", None), "-r": ("resources", None),
          "--cpu-shares": ("cpu_share", None),  # runc's --cpu-share, as docker spells it
          "--l3-cache-schema": ("l3_cache_schema", None), "--mem-bw-schema": ("mem_bw_schema", None),  # Intel RDT
          **{flag: (flag[2:].replace("-", "_"), None) for flag in FLAGS}}


def main(options, args: list[str]) -> int:
    from mrunc.state import Container, StateError

    opts = parse_or_status(USAGE, args, {"--plan": "plan", "--trace": "trace"}, VALUED, ("id",))
    if isinstance(opts, int):
        return opts
    if opts.l3_cache_schema or opts.mem_bw_schema:
        return fail("--l3-cache-schema, --mem-bw-schema: Intel RDT is not supported by mrunc (no resctrl)")
    flagged = _flag_resources(opts)  # a bad value is refused here, before the container is looked at
    if isinstance(flagged, str):
        return fail(flagged)
    try:
        container = Container(options.root, opts.id)
        with container.locked() as state:
            status = container.status(state)
            if status not in ("running", "created", "paused"):
                return fail(f"cannot update container {opts.id!r}: container not running (it is {status})")
            plan = _compile(opts, flagged, state, container.plan())
            if isinstance(plan, str):
                return fail(plan)
            if opts.plan:
                from mrunc.compiler.render import text

                print(text(plan), end="")
                return 0
            return _apply(container, state, plan, opts.trace)
    except StateError as e:
        return fail(str(e))
    except OSError as e:  # the state dir's lock or files: nothing was written (_apply says so past the first write)
        return fail(f"cannot update container {opts.id!r}: {_os_error(e)}")


def _os_error(e: OSError) -> str:
    return f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e))


def _flag_resources(opts: Options) -> dict | str | None:
    """The resources the flags give (None with --resources: runc ignores the flags then), or the error text."""
    from mrunc.compiler.errors import ConfigError

    if opts.resources:
        return None
    try:
        return from_flags(opts)
    except ConfigError as e:
        return "update flags: invalid resources:\n  " + _flag_names(str(e), opts)


def _compile(opts: Options, flagged: dict | None, state: dict, container_plan: dict) -> dict | str:
    from mrunc.compiler.compile_update import check_resources, compile_update
    from mrunc.compiler.errors import ConfigError, ConfigErrors

    source = "--resources " + opts.resources if opts.resources else "update flags"
    try:
        resources = check_resources(_read(opts.resources) if flagged is None else flagged)
        return compile_update(resources, state, container_plan)
    except (ConfigError, ConfigErrors) as e:
        return f"{source}: invalid resources:\n  " + _flag_names(str(e), opts).replace("\n", "\n  ")
    except OSError as e:  # only reading the --resources file opens anything here
        return f"--resources {opts.resources}: {e.strerror}"


def _read(path: str) -> object:
    from mrunc.compiler.parse import parse

    if path == "-":
        return parse(sys.stdin.buffer.read(), "a LinuxResources document")
    with open(path, "rb") as f:
        return parse(f.read(), "a LinuxResources document")


def from_flags(opts: Options) -> dict:
    """The resources the flags give; a value that does not parse is a ConfigError naming the flag."""
    from mrunc.compiler.errors import ConfigError

    resources: dict = {}
    for flag, (section, field, kind) in FLAGS.items():
        text = getattr(opts, flag[2:].replace("-", "_"))
        if text is None:
            continue
        value = _parse(text, kind)
        if value is None:
            raise ConfigError(f"/{section}/{field}", f"got {text!r}; allowed: {ALLOWED[kind]}")
        if kind == "weight" and value == 0:
            continue  # unset, as runc's --blkio-weight 0
        resources.setdefault(section, {})[field] = value
    return resources


def _parse(text: str, kind: str) -> int | str | None:
    if kind == "str":
        return text
    if kind == "size":
        if text == "-1":
            return -1
        match = MEMORY_SIZE.match(text.strip())
        if not match:
            return None
        unit = "kmgtp".find((match.group(2) or " ").lower()) + 1
        return int(float(match.group(1)) * 1024 ** unit)
    try:
        value = int(text)
    except ValueError:
        return None
    if kind == "weight":
        return value if value == 0 or value in BLKIO_WEIGHTS else None
    return value if kind == "int" or value >= 0 else None


def _flag_names(message: str, opts: Options) -> str:
    """Errors about flag values name the flag beside the pointer."""
    if opts.resources:
        return message
    for flag, (section, field, _) in FLAGS.items():
        message = message.replace(f"/{section}/{field}: ", f"/{section}/{field} ({flag}): ")
    return message


def _apply(container, state: dict, plan: dict, trace: bool) -> int:
    """Run the writes; then the state keeps what is in force, and in-force.json the container's plan with it.
    Both files are written beside their place first: a full disk refuses the update before any cgroup write, and a
    failed write removes them, so the state never says other than what the cgroups hold."""
    import os

    from mrunc.executor.optable import Context
    from mrunc.executor.run import OpFailed, _run_op
    from mrunc.state import stage, state_text

    in_force = _in_force(container, plan)  # first: a damaged in-force.json refuses the update before any write
    files = {container.path("state.json"): state_text({**state, "resources": plan["resources"]}),
             container.path("in-force.json"): in_force}
    staged: dict[str, str] = {}
    try:
        for path, text in files.items():
            staged[path] = stage(path, text)
    except OSError as e:
        _unstage(staged)
        return fail(f"cannot update container {container.id!r}: {path}: {e.strerror}; nothing was changed")
    ctx = Context()
    for i in range(len(plan["ops"])):
        try:
            _run_op(plan["ops"], i, ctx, trace)
        except OpFailed as e:
            _unstage(staged)
            return fail(f"update of container {container.id!r}: {e}")
    for path, tmp in staged.items():
        try:
            os.rename(tmp, path)
        except OSError as e:
            _unstage(staged)
            return fail(f"update of container {container.id!r}: the cgroups hold the update, but {path} could not "
                        f"record it: {e.strerror}")
    return 0


def _unstage(staged: dict[str, str]) -> None:
    import os

    for tmp in staged.values():
        try:
            os.unlink(tmp)
        except FileNotFoundError:  # renamed already
            pass


def _in_force(container, update: dict) -> str:
    """The plan the container was created with, each cgroup write an update replaced by the update's (same
    config pointer), new ones after the last write: so diff and audit read what is in force now."""
    import os

    from mrunc.compiler.compile import dumps

    # read as plan.json is (state.py): a symlink is not followed, a damaged file is a DamagedState naming it
    plan = container.plan("in-force.json" if os.path.lexists(container.path("in-force.json")) else "plan.json")
    writes = ("cgroup_write", "cgroup_write_first")
    replaced = {o["src"] for o in update["ops"]}
    kept = [o for o in plan["ops"] if not (o["op"] in writes and o["src"] in replaced)]
    last = max((i for i, o in enumerate(kept) if o["op"] in writes and o["proc"] == "runtime"), default=-1)
    plan["ops"] = kept[:last + 1] + update["ops"] + kept[last + 1:]
    return dumps(plan)
