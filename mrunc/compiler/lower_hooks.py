"""Hooks (config.md "POSIX-platform Hooks"): each hook becomes one `hook` op, in listed order, run by the
process and at the point the spec names (compiler/order.py places them). poststart and poststop ops go in
lists of their own: `mrunc start` runs the first after the user process started, `mrunc delete` the second.
"""

from mrunc.compiler.emit import Emitter
from mrunc.compiler.errors import pointer


def lower(emit: Emitter, config: dict, kind: str, proc: str, container_id: str) -> None:
    # What the executor cannot know at run time besides status and pid goes into the op: the hook's stdin.
    state = {"ociVersion": config["ociVersion"], "id": container_id, "bundle": emit.bundle,
             "annotations": config.get("annotations", {})}
    for i, h in enumerate(config.get("hooks", {}).get(kind, [])):
        emit("hook", proc, pointer("hooks", kind, i), kind=kind, path=h["path"], args=h.get("args", []),
             env=h.get("env"), timeout=h.get("timeout"), state=state,
             as_process=[])  # a startContainer hook's: order.py, once the process steps after it are placed


def lower_later(emit: Emitter, config: dict, container_id: str) -> None:
    """poststart and poststop: ops of the runtime, outside the create sequence."""
    for kind in ("poststart", "poststop"):
        later = Emitter(emit.bundle)
        lower(later, config, kind, "runtime", container_id)
        if later.ops:
            emit.later[kind] = later.ops
