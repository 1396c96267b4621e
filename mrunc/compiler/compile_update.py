"""`mrunc update ID`: a LinuxResources document (runc's -r file, or its flags) compiled into a plan of its own:
the cgroup writes that change a running container's limits, into the cgroups its plan made.

The document is checked as the config's linux.resources section is (the same schema definitions, through the
generated validator: jsonschema is imported only to explain a refusal), with pointers into the document. What
is in force (state.json "resources": the config's section, then each update merged in) decides what the
kernel would refuse half-way (v1: memory above memory+swap), so a bad update is refused before any write.
"""

import copy
import json

from mrunc.compiler import lower_cgroups, order
from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import ConfigError, ConfigErrors
from mrunc.executor.cgroup_control import container_cgroups
from mrunc.executor.host import fingerprint

SRC = lower_cgroups.SRC  # /linux/resources: the update plan's ops point where create's do, so diff pairs them
# What runc 1.1's update changes; the rest of a LinuxResources document is valid but left as it is (as runc does).
UPDATED = {"memory": {"limit", "reservation", "swap", "kernel", "kernelTCP"},
           "cpu": {"shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"},
           "blockIO": {"weight"}, "pids": {"limit"}, "unified": None}
MINIMAL_CONFIG = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}


def check_resources(resources: object) -> dict:
    """Validate a LinuxResources document as the config's linux.resources; ConfigErrors point into it."""
    from mrunc.compiler import load

    try:
        load.validate({**MINIMAL_CONFIG, "linux": {"resources": resources}})
    except ConfigErrors as e:
        raise ConfigErrors([_relative(error) for error in e.errors]) from None
    if not isinstance(resources, dict):
        raise ConfigError("/", f"got {json.dumps(resources)[:40]}; allowed: a LinuxResources object")
    return resources


def _relative(error: ConfigError) -> ConfigError:
    return ConfigError(error.pointer.removeprefix(SRC) or "/", error.problem)


def compile_update(resources: dict, state: dict, container_plan: dict) -> dict:
    """The update plan; its "resources" are what will be in force once it ran. Raises ConfigError (pointer into
    the resources document) for what the kernel would refuse."""
    host = container_plan["host"]
    in_force = state.get("resources", {})
    merged = merge(in_force, resources)
    emit = Emitter(state.get("bundle", ""))
    changed = _changed(resources, emit)
    try:
        if host["cgroup"] == "v2":
            writes = lower_cgroups._v2_writes(_v2_view(changed, merged), host, emit)
        else:
            writes = lower_cgroups._v1_writes(changed, emit)
            _check_v1_memsw(changed, merged)
            writes = order.update_writes_v1(writes, changed.get("memory", {}),
                                            in_force.get("memory", {}).get("limit", 0))
    except ConfigError as e:
        raise _relative(e) from None
    lower_cgroups.emit_writes(emit, writes, host, _targets(container_plan))
    note = f"/container: update of container {state['id']!r}"
    plan = emit.plan(json.dumps(resources, sort_keys=True).encode(), state.get("bundle", ""), fingerprint(), [note])
    return {**plan, "resources": merged}


def merge(base: dict, update: dict) -> dict:
    """The update's values over the base's, section by section (a section's other keys stay)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _changed(resources: dict, emit: Emitter) -> dict:
    """The fields update changes; a note for each one it leaves as it is."""
    changed: dict = {}
    for section, value in resources.items():
        keys = UPDATED.get(section, set())
        if keys is None:
            changed[section] = value
            continue
        fields = value.items() if isinstance(value, dict) else [("", value)]
        for key, field in fields:
            if key in keys:
                changed.setdefault(section, {})[key] = field
            else:
                where = f"/{section}/{key}".rstrip("/")
                emit.note(SRC + where, "not changed by update (runc's update leaves it too); recreate the container")
    return changed


def _v2_view(changed: dict, merged: dict) -> dict:
    """v2 files that hold two fields (memory.swap.max: swap less the limit; cpu.max: quota and period) are
    written from what will be in force, so changing one field keeps the other."""
    view = copy.deepcopy(changed)
    for section, pair in (("memory", ("limit", "swap")), ("cpu", ("quota", "period"))):
        if set(pair) & set(changed.get(section, {})):
            view[section].update({k: merged[section][k] for k in pair if k in merged.get(section, {})})
    return view


def _check_v1_memsw(changed: dict, merged: dict) -> None:
    """v1 keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes: refuse an update after which the limits in
    force would not (order.update_writes_v1 then keeps it so at every write)."""
    if not {"limit", "swap"} & set(changed.get("memory", {})):
        return
    memory = changed["memory"]
    limit, swap = merged["memory"].get("limit", -1), merged["memory"].get("swap", -1)
    if limit > 0 and 0 < swap < limit:
        field = "swap" if "swap" in memory else "limit"
        got = swap if field == "swap" else limit
        raise ConfigError(f"{SRC}/memory/{field}", f"got {got}: memory+swap {swap} less than the memory limit "
                          f"{limit}; allowed: swap >= the limit (swap is memory+swap), or -1")


def _targets(container_plan: dict) -> dict[str, str]:
    """Controller -> the container's cgroup directory, from the plan that made them."""
    dirs = container_cgroups(container_plan)
    if container_plan["host"]["cgroup"] == "v2":
        return {"": dirs[0]}
    return {d[len(lower_cgroups.ROOT) + 1:].split("/", 1)[0]: d for d in dirs}
