"""`mrunc kill [--all] ID [SIGNAL]`: signal init (or, with --all, every process in the container's cgroup:
mrunc/executor/cgroup_control.py, cgroup.kill for KILL on v2). SIGNAL is a name with or without SIG, or a
number (0 too: a liveness check, as runc takes it); TERM by default.

The answers for a container that is gone are runc 1.1's, because engines parse them (docs/engines.md):
  - stopped, without --all: exit 1, "container not running" (containerd's shim and podman take it for
    "already finished", so a stop that races the container's own exit still succeeds);
  - stopped, with --all: exit 0, after signalling whatever is still in its cgroup (nothing, once the cgroup
    is gone);
  - unknown id: exit 1, "... does not exist" (containerd: "no such container"), before the signal is parsed.
"""

import _signal  # not signal: its enums cost ms of every call
import os

from mrunc.commands.args import parse_or_status
from mrunc.commands.common import fail
from mrunc.state import Container, StateError

NOT_RUNNING = "container not running"  # runc's libcontainer.ErrNotRunning: the words engines match


def parse_signal(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if 0 <= number < _signal.NSIG:
            return number
    else:
        name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
        if name in signal_names():
            return getattr(_signal, name)
    raise StateError(f"invalid signal {text!r}; allowed: a name such as TERM, SIGKILL or HUP, or a number "
                     f"from 0 to {_signal.NSIG - 1}")


def signal_names() -> set[str]:
    """The names signal.Signals has (aliases such as SIGIOT too), by the rule signal.py makes it with."""
    return {name for name in dir(_signal) if name.isupper() and name.startswith("SIG") and not name.startswith("SIG_")}


def main(options, args: list[str]) -> int:
    opts = parse_or_status("usage: mrunc kill [--all] ID [SIGNAL]", args, {"--all": "all", "-a": "all"},
                           required=("id",), optional=("signal",))
    if isinstance(opts, int):
        return opts
    try:
        container = Container(options.root, opts.id)
        with container.locked() as state:  # an unknown id fails here, before the signal is read (as runc)
            return _kill(container, state, parse_signal(opts.signal or "TERM"), opts.all)
    except StateError as e:
        return fail(str(e))
    except (OSError, TimeoutError) as e:
        return fail(f"cannot kill container {opts.id!r}: {e}")


def _kill(container: Container, state: dict, sig: int, everything: bool) -> int:
    status = container.status(state)
    if status == "creating":
        return fail(f"cannot kill container {container.id!r}: {NOT_RUNNING} (it is still being created)")
    if everything:
        return _signal_all(container.id, state["cgroups"], sig)
    if status == "stopped":
        return fail(f"cannot kill container {container.id!r}: {NOT_RUNNING} (it is stopped)")
    try:
        os.kill(state["pid"], sig)
    except ProcessLookupError:  # init exited since status() looked: what a stopped container answers
        return fail(f"cannot kill container {container.id!r}: {NOT_RUNNING} (its init has just exited)")
    if status == "paused" and sig == _signal.SIGKILL:
        # On v1 a frozen process dies only once thawed; runc thaws for SIGKILL alone.
        from mrunc.executor import cgroup_control

        cgroup_control.set_frozen(state["cgroups"], False)
    return 0


def _signal_all(container_id: str, cgroups: list[str], sig: int) -> int:
    """kill --all: every process of the cgroups that still exist; none left (a stopped container whose cgroup
    is gone) is success, as runc's."""
    from mrunc import log
    from mrunc.executor import cgroup_control  # only here: `kill ID SIG` is engines' liveness check, called often

    present = [d for d in cgroups if os.path.isdir(d)]
    how = cgroup_control.signal_all(present, sig) if present else "no cgroup left: nothing to signal"
    log.debug(f"kill --all {container_id!r} signal {sig}: {how}")
    return 0
