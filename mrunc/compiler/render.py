"""Renderings of a plan: the text listing people read (one op per line, like pickletools or re.DEBUG),
and shell and Python scripts for reviewers (jinja2 templates in mrunc/templates)."""

import json

from mrunc.compiler import render_sh
from mrunc.executor.run import describe_args


def _short_args(o: dict) -> str:
    args = dict(o["args"])
    if o["op"] == "seccomp_load":
        args["bpf"] = f"<{len(args['bpf']) * 3 // 4 // 8} insns>"
        args["pfc"] = "<below>"
    if o["op"] == "hook":
        del args["state"]  # the same for every hook: id, bundle, annotations
        if args["kind"] != "startContainer":
            del args["as_process"]  # always [] (plan.py checks it): they run as their process does
    if o["op"] == "cgroup_device_filter":
        args.update(bpf=f"<{len(args['listing'])} insns>", rules="<below>", listing="<below>")
    return describe_args(args)


def text(plan: dict, failed: int | None = None) -> str:
    """The listing; `failed` marks an op with `-->` as dis does."""
    host = plan["host"]
    lines = [f"mrunc plan {plan['format']} (mrunc {plan['mrunc_version']}) "
             f"config sha256:{plan['config_sha256'][:16]} host {host['arch']} cgroup {host['cgroup']}"]
    lines += [f"note: {n}" for n in plan.get("notes", [])]
    width = max(len(o["op"]) for o in plan["ops"])
    for i, o in enumerate(plan["ops"]):
        mark = "-->" if i == failed else "   "
        lines.append(f"{mark}{i:4} {o['proc']:<7} {o['op']:<{width}}  {_short_args(o)}  # {o['src']}")
    for key, who in (("poststart", "mrunc start, once the process runs"), ("poststop", "mrunc delete")):
        if plan.get(key):
            lines.append(f"\n{key} ops (run by {who}; a failure is a warning):")
            lines += [f"   {i:4} {o['proc']:<7} {o['op']:<{width}}  {_short_args(o)}  # {o['src']}"
                      for i, o in enumerate(plan[key])]
    for i, o in enumerate(plan["ops"]):
        if o["op"] == "seccomp_load":
            lines.append(f"\nseccomp filter of op {i} (libseccomp pseudo-filter code):")
            lines.append(o["args"]["pfc"].rstrip())
        if o["op"] == "cgroup_device_filter":
            lines.append(f"\ndevice program of op {i}: the rules merged as v1's devices controller merges them, checked"
                         " top down (the first match decides; the last line is the default), then its instructions:")
            lines += [f"  {rule}" for rule in o["args"]["rules"]] + o["args"]["listing"]
    return "\n".join(lines) + "\n"


def script(plan: dict, kind: str) -> str:
    """kind: 'sh' or 'py'."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mrunc", "templates"), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["json"] = lambda v: json.dumps(v)
    env.filters["sh"] = _sh_quote
    env.filters["mount_options"] = render_sh.mount_options
    env.filters["cgroup_levels"] = render_sh.cgroup_levels
    env.filters["prefixes"] = render_sh.prefixes
    env.tests["startingwith"] = lambda value, prefix: str(value).startswith(prefix)
    extra = {"listing": text(plan), "executor": executor_sources()} if kind == "py" else {"sh": render_sh.context(plan)}
    return env.get_template(f"plan.{kind}.j2").render(plan=plan, describe=_short_args, **extra)


def executor_sources() -> dict[str, str]:
    """mrunc's executor (stdlib only), module name -> source, for the standalone Python rendering."""
    from importlib import resources

    package = resources.files("mrunc")
    sources = {"mrunc": package.joinpath("__init__.py").read_text()}
    for entry in sorted(package.joinpath("executor").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            stem = entry.name[:-3]
            sources["mrunc.executor" if stem == "__init__" else f"mrunc.executor.{stem}"] = entry.read_text()
    return sources


def _sh_quote(value: object) -> str:
    import shlex

    return shlex.quote(value if isinstance(value, str) else json.dumps(value))

