"""Where mrunc's errors and warnings go: stderr, and the `--log` file, as text or one JSON object per line
(`--log-format json`: level, msg, time; containerd and podman read a failed command's error from there).
Cheap to import: it is on the exec path."""

import sys
import time

_options = {"path": "", "format": "text", "debug": False}


def configure(path: str, fmt: str, debug: bool) -> None:
    _options.update(path=path, format=fmt, debug=debug)


def error(message: str) -> None:
    _emit("error", message)


def warning(message: str) -> None:
    _emit("warning", message)


def debug(message: str) -> None:
    if _options["debug"]:
        _emit("debug", message)


def _emit(level: str, message: str) -> None:
    """The --log file first: it is what engines read, and stderr may be a pipe nobody reads any more."""
    prefix = "" if level == "error" else f"{level}: "
    if _options["path"]:
        try:
            with open(_options["path"], "a") as f:
                f.write(_line(level, message))
        except OSError as e:
            _to_stderr(f"mrunc: warning: cannot write the log {_options['path']}: {e.strerror}")
    _to_stderr(f"mrunc: {prefix}{message}")


def _to_stderr(text: str) -> None:
    """A failed write to stderr (EPIPE: the engine stopped reading) is not the command's failure, as in runc;
    stderr becomes /dev/null, so the unwritten text is not flushed again (and failed again) at exit."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        sys.stderr = open("/dev/null", "w")  # kept open for the life of the process


def _line(level: str, message: str) -> str:
    now = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"
    if _options["format"] == "json":
        import json

        return json.dumps({"level": level, "msg": message, "time": stamp}) + "\n"
    quoted = message.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'time="{stamp}" level={level} msg="{quoted}"\n'
