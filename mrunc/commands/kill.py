"""`mrunc kill [--all] ID [SIGNAL]`: signal init (or, with --all, every process in the container's cgroup:
mrunc/executor/cgroup_control.py, cgroup.kill for KILL on v2). SIGNAL is a name with or without SIG, or a
number; TERM by default. A stopped container cannot be killed."""

import argparse
import os
import signal

from mrunc.commands.common import fail
from mrunc.executor import cgroup_control
from mrunc.state import Container, StateError


def parse_signal(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
        if name in signal.Signals.__members__:
            return signal.Signals[name].value
    raise StateError(f"invalid signal {text!r}; allowed: a name such as TERM, SIGKILL or HUP, or a number "
                     f"from 1 to {signal.NSIG - 1}")


def main(options, args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="mrunc kill")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="TERM")
    opts = p.parse_args(args)
    try:
        sig = parse_signal(opts.signal)
        container = Container(options.root, opts.id)
        with container.locked() as state:
            status = container.status(state)
            if status in ("stopped", "creating"):
                return fail(f"cannot kill container {opts.id!r}: it is {status}, not created or running")
            if opts.all:
                _signal_all(opts.id, state["cgroups"], sig)
                return 0
            try:
                os.kill(state["pid"], sig)
            except ProcessLookupError:
                pass
    except StateError as e:
        return fail(str(e))
    except (OSError, TimeoutError) as e:
        return fail(f"cannot kill container {opts.id!r}: {e}")
    return 0


def _signal_all(container_id: str, cgroups: list[str], sig: int) -> None:
    from mrunc import log

    how = cgroup_control.signal_all(cgroups, sig)
    log.debug(f"kill --all {container_id!r} signal {sig}: {how}")
