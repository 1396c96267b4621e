"""Is a process still the one we started? Its start time from /proc, for the state of a container (state.py:
`mrunc state` and `list` need only this, not the lifecycle ops)."""


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (/proc/PID/stat field 22); None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Is `pid` running (and, given its start time, still the same process rather than a reused pid)?"""
    now = start_time(pid) if pid > 0 else None
    return now is not None and (started is None or now == started)
