"""Collects ops as the lowering produces them, checking each against the executor's op table."""

from mrunc import __version__
from mrunc.executor.ops import OPS
from mrunc.executor.plan import FORMAT, sha256_hex


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

    def plan(self, raw: bytes, bundle: str, host: dict, notes: list[str]) -> dict:
        """The plan of the ops emitted: every plan's fields, in the order plans show them. `raw`: the bytes of the
        document compiled (config.json; exec's process or update's resources as sorted JSON), whose digest the plan
        records; `notes` go before the lowering's own."""
        return {"format": FORMAT, "mrunc_version": __version__, "config_sha256": sha256_hex(raw), "bundle": bundle,
                "host": host, "notes": notes + self.notes, "ops": self.ops, **self.later}
