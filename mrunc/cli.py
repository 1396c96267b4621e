"""Command line: global options, then one module per command (mrunc/commands/), imported only when used.

`mrunc exec PLAN` is the hot path: it must reach the executor without importing argparse or the compiler.
"""

import _signal  # not `signal`: its enums cost ms of every start
import posix  # built in and already loaded: `os` is not yet, and this needs only write
import sys

from mrunc import SPEC_VERSION, __version__

# command -> module in mrunc.commands with `main(options: GlobalOptions, args: list[str]) -> int`
COMMANDS = {
    "audit": "audit",
    "compile": "compile",
    "diff": "diff",
    "exec": "exec_plan",
    "features": "features",
    "run": "run",
    "spec": "spec",
    "verify": "verify",
    "create": "create",
    "start": "start",
    "state": "state_show",
    "kill": "kill",
    "delete": "delete",
    "ps": "ps",
    "list": "list_containers",
    "pause": "pause",
    "resume": "resume",
    "update": "update",
}

USAGE = """usage: mrunc [--root DIR] [--log FILE] [--log-format text|json] [--policy FILE] [--debug] [--systemd-cgroup]
             COMMAND ...

commands:
  compile CONFIG [-o|--output PLAN] [--format json|text|sh|py] [--strict]   validate and lower a config into a plan
  exec PLAN [--trace] [--force] [--expect sha256:HEX]   run a plan in the foreground (--force: even if stale)
  features                                              what this runtime supports (runtime-spec features.md)
  spec [--rootless] [--bundle DIR]                      write a default config.json, like `runc spec`
  audit CONFIG|PLAN [--profile P] [--format F]          check a plan against baseline/restricted/a profile file
  diff A B [--format F] [--fail-on raise]               what changes between two plans, by security impact
  verify CONFIG|PLAN [--config CONFIG]                  check a plan's structure and invariants without running it
  run [--detach] [--bundle DIR] [--pid-file F] [--console-socket S] ID   create and start (foreground: wait)
  create [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N] ID   set up; init waits for start
  start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID | pause ID | resume ID
  ps [--format table|json] ID | list [-q] [--format table|json]
  update [-r FILE|-] [--memory N] [--memory-swap N] [--cpu-quota N] [--pids-limit N] ... [--plan] ID
  --version
"""


class GlobalOptions:
    """Defaults as class attributes; not a dataclass, which would put inspect and re on exec's start-up."""

    root: str = "/run/mrunc"
    log: str = ""
    log_format: str = "text"
    debug: bool = False
    systemd_cgroup: bool = False  # accepted; there is no systemd here, so cgroupfs with a warning (README)
    policy: str = ""  # the host policy file create, run and exec apply (mrunc/policy.py); its default is in /etc


# runc's global options: those with a value, and flags. --criu and --rootless are accepted and ignored.
VALUED = {"--root": "root", "--log": "log", "--log-format": "log_format", "--policy": "policy", "--criu": "",
          "--rootless": ""}
FLAGS = {"--debug": "debug", "--systemd-cgroup": "systemd_cgroup"}


def _fail(message: str, status: int = 1) -> int:
    print(f"mrunc: {message}", file=sys.stderr)
    return status


def _usable_stderr() -> None:
    """An engine may hand the runtime a stderr it cannot write: containerd's runc shim gives a pod sandbox's
    create /dev/null opened read-only. runc ignores the failed write and its error still reaches the engine
    through the --log file; a failed print here would raise instead, so the error never reached the log and the
    command died with status 120 (containerd: 'unable to retrieve OCI runtime error'). A stderr that cannot be
    written is swapped for /dev/null (which then also holds fd 2 if it was closed, so no file we open lands
    there). One zero-length write: it fails with EBADF on an fd not open for writing."""
    try:
        posix.write(2, b"")
    except OSError:
        sys.stderr = open("/dev/null", "w")  # kept open for the life of the process


def parse_global(args: list[str]) -> tuple[GlobalOptions, list[str]]:
    """Global options come before the command, as in runc: `--root DIR` or `--root=DIR`, `--debug`."""
    options = GlobalOptions()
    while args and args[0].startswith("--"):
        name, eq, value = args[0].partition("=")
        if name in FLAGS and not eq:
            setattr(options, FLAGS[name], True)
            args = args[1:]
        elif name in VALUED and (eq or len(args) > 1):
            value, args = (value, args[1:]) if eq else (args[1], args[2:])
            if VALUED[name]:
                setattr(options, VALUED[name], value)
        else:
            break
    return options, args


def main(argv: list[str] | None = None) -> int:
    # A caller may leave SIGCHLD ignored (it is inherited across exec): the kernel would then reap our children
    # itself, and waitpid would find none (ECHILD) or a pid reused by now. mrunc waits for every child it makes.
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _usable_stderr()
    options, args = parse_global(list(sys.argv[1:] if argv is None else argv))
    if options.log_format not in ("text", "json"):
        return _fail(f"--log-format: got {options.log_format!r}; allowed: text, json", 2)
    if options.log or options.debug:
        from mrunc import log

        log.configure(options.log, options.log_format, options.debug)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    if args[0] in ("--version", "-v", "version"):
        from mrunc.executor.plan import FORMAT

        print(f"mrunc version {__version__}\nspec: {SPEC_VERSION}\nplan: {FORMAT}")
        return 0
    module = COMMANDS.get(args[0])
    if module is None:
        return _fail(f"unknown command {args[0]!r}\n{USAGE}", 2)
    return __import__(f"mrunc.commands.{module}", fromlist=["main"]).main(options, args[1:])
