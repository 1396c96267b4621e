"""Collects ops as the lowering produces them, checking each against the executor's op table."""

from mrunc.executor.ops import OPS


class Emitter:
    def __init__(self, bundle: str = "") -> None:
        self.bundle = bundle
        self.ops: list[dict[str, object]] = []
        self.notes: list[str] = []
        self.later: dict[str, list[dict[str, object]]] = {}  # poststart/poststop ops (lower_hooks.py)

    def __call__(self, name: str, proc: str, src: str, /, **args: object) -> None:
        spec = OPS[name]
        if proc not in spec.procs or set(args) != set(spec.args):
            raise AssertionError(f"compiler bug: {name} [{proc}] with {sorted(args)}; op takes {spec.args}")
        self.ops.append({"op": name, "proc": proc, "args": {k: args[k] for k in spec.args}, "src": src})

    def note(self, pointer: str, text: str) -> None:
        """Something the config asks for that this host does not apply; shown in every rendering."""
        self.notes.append(f"{pointer}: {text}")
