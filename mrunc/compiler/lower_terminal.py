"""process.terminal: the pty ops (executor/ops_tty.py). init opens the pty inside the container and hands
the master to runtime, which sends it to the engine's console socket or, with none, relays it itself."""

from mrunc.compiler.emit import Emitter


def lower(emit: Emitter, process: dict, console_socket: str | None, mount_ns: bool) -> None:
    if not process.get("terminal"):
        return
    src = "/process/terminal"
    emit("setsid", "init", src)
    emit("pty_open", "init", src)
    size = process.get("consoleSize")
    if size:
        emit("pty_resize", "init", "/process/consoleSize", rows=size["height"], cols=size["width"])
    if mount_ns:
        emit("console_mount", "init", src)
    emit("pty_send_master", "init", src)
    if console_socket:
        emit("pty_forward", "runtime", src, socket=console_socket)
    else:
        emit("pty_relay", "runtime", src)
    emit("pty_stdio", "init", src)
