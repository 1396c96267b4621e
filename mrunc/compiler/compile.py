"""config.json -> plan: load, validate, check, lower in order, and serialize deterministically."""

import os

from mrunc.compiler import load
from mrunc.executor import jsontext


def compile_config(config_path: str, container_id: str | None = None, host: dict | None = None,
                   console_socket: str | None = None, exec_fifo: str | None = None, preserve_fds: int = 0,
                   strict: bool = False, raw: bytes | None = None) -> dict:
    """Compile a bundle's config. Raises ConfigError/ConfigErrors on bad input, OSError if unreadable.
    With process.terminal, the pty master goes to `console_socket`, or with none mrunc relays it.
    With `exec_fifo` (create, run), init waits on it for `mrunc start` just before execve.
    With `strict`, a property the spec does not define is refused (by default it is a note).
    `raw`: config_path's bytes, read by the caller, which goes on to use them (create records the state from
    them): compiled from the same bytes, the plan's config_sha256 is theirs, whatever the file holds by then."""
    if raw is None:
        with open(config_path, "rb") as f:
            raw = f.read()
    return compile_bytes(raw, os.path.dirname(os.path.abspath(config_path)), container_id, host, console_socket,
                         exec_fifo, preserve_fds, strict)


def compile_bytes(raw: bytes, bundle: str, container_id: str | None = None, host: dict | None = None,
                  console_socket: str | None = None, exec_fifo: str | None = None, preserve_fds: int = 0,
                  strict: bool = False) -> dict:
    from mrunc.compiler import unknown_properties

    config = load.parse(raw)
    load.validate(config)
    unknown = unknown_properties.find(config)
    if unknown and strict:
        from mrunc.compiler.errors import ConfigErrors

        raise ConfigErrors(unknown_properties.refusal(unknown))
    notes = [f"{u.pointer}: {u.text()}" for u in unknown]
    return _lower(config, raw, bundle, container_id, host, console_socket, exec_fifo, preserve_fds, notes)


def _lower(config: object, raw: bytes, bundle: str, container_id: str | None, host: dict | None,
           console_socket: str | None, exec_fifo: str | None, preserve_fds: int, notes: list[str]) -> dict:
    """Check and lower a validated config; `notes` (the unknown properties) go first in the plan's notes."""
    from mrunc.compiler import checks, order
    from mrunc.executor.host import fingerprint
    from mrunc.executor.plan import sha256_hex

    checks.check(config)
    assert isinstance(config, dict)
    digest = sha256_hex(raw)
    host = host or fingerprint()
    rootfs = os.path.normpath(os.path.join(bundle, config["root"]["path"]))
    name = container_id or digest[:12]
    emit = order.lower(config, rootfs, bundle, host, f"/mrunc/{name}", console_socket, name, exec_fifo, preserve_fds)
    if seccomp := config.get("linux", {}).get("seccomp"):  # rule 8: nothing after the filter that it denies
        from mrunc.compiler.seccomp_check import refuse_denied

        emit.notes += refuse_denied(emit.ops, host["arch"], seccomp, "/linux/seccomp")
    return emit.plan(raw, bundle, host, notes)


OP_LISTS = ("ops", "poststart", "poststop")


def dumps(plan: dict) -> str:
    """JSON with one op per line, so plans diff line by line; byte-identical for equal plans."""
    head = {k: v for k, v in plan.items() if k not in OP_LISTS}
    lines = jsontext.dumps(head, indent=1)[:-2]  # json.dumps' text, without importing json (re, enum)
    for key in (k for k in OP_LISTS if k in plan):
        lines += f',\n "{key}": [\n' + ",\n".join("  " + jsontext.dumps(o, separators=(",", ": ")) for o in plan[key])
        lines += "\n ]"
    return lines + "\n}\n"
