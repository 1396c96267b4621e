"""Hook ops: the config's hooks, each run where the plan puts it (prestart and createRuntime by runtime,
createContainer and startContainer in init, poststart and poststop by `start` and `delete`).

Ops that run in init after pivot_root cannot import anything (the host's stdlib is out of sight): only
built-in modules and modules imported beforehand may be used here.
"""

import _json  # already loaded on the exec path (plan.py); its string encoder writes the hooks' state JSON
import errno
import os
import time

from mrunc.executor.ops_lifecycle import restore_default_signals
from mrunc.executor.optable import OPS, Context, op
from mrunc.executor.plan import process_step_ops

TYPE_CHECKING = False  # no typing import at run time (optable.py)
if TYPE_CHECKING:
    from collections.abc import Callable

SIGKILL = 9
# The status a hook of each kind sees on stdin. runtime.md, "State": `created` is "after step 2 in the
# lifecycle", and prestart, createRuntime and createContainer are its steps 3 to 5, so they see `created`, as
# crun's do (runc 1.1 sends `creating`; the validation suite's hooks_stdin expects `created`). `mrunc state`
# still says `creating` until create returns: no caller may start the container before then.
IN_CONTAINER = ("createContainer", "startContainer")  # run by init, in the container's namespaces (config.md)
HOOK_STATUS = {"prestart": "created", "createRuntime": "created", "createContainer": "created",
               "startContainer": "created", "poststart": "running", "poststop": "stopped"}


@op("hook", "runtime init", "kind", "path", "args", "env", "timeout", "state", "as_process")
def hook(ctx: Context, kind: str, path: str, args: list[str], env: list[str] | None, timeout: int | None,
         state: dict, as_process: list[str]) -> None:
    """Run a config hook, state JSON on stdin, in a session of its own; killed (the whole session) after
    `timeout` seconds. Its stdout and stderr are kept for the error message. `as_process` (startContainer only):
    the plan's ops after this one that give the user process its filter and credentials, which the hook's child
    runs too, with their arguments, right before its execve: the hook runs as the process will (order.py)."""
    stdin = _state_json({**state, "status": HOOK_STATUS[kind], "pid": _state_pid(ctx, kind)})
    environ = os.environ if env is None else dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    steps = _steps(ctx, as_process)
    status, output = _run(path, args or [path], environ, stdin, timeout, lambda: _become_process(ctx, steps))
    if status is None:
        raise OSError(errno.ETIMEDOUT, f"{kind} hook {path} ran past specified timeout of {timeout:.1f}s")
    if status:
        text = output.decode(errors="replace").strip()[-300:]
        raise OSError(0, f"{kind} hook {path} exited with status {status}" + (f": {text}" if text else ""))


def _steps(ctx: Context, as_process: list[str]) -> list[dict]:
    """The ops `as_process` names: those after the running op, which the plan check has matched it against."""
    if not as_process:
        return []
    steps = process_step_ops(ctx.ops, ctx.at)
    if [o["op"] for o in steps] != as_process:  # a plan that skipped the check (a caller's bug)
        raise OSError(errno.EINVAL, f"as_process {as_process} are not the process steps after the hook")
    return steps


def _become_process(ctx: Context, steps: list[dict]) -> None:
    """In the hook's child: each step op, as init will run it. After a seccomp_load only the id and capability
    calls follow, and execve: what init itself makes after its own load (compiler/seccomp_check.py checks those)."""
    for o in steps:
        try:
            OPS[o["op"]].run(ctx, **o["args"])  # type: ignore[misc]
        except OSError as e:
            raise OSError(e.errno, f"{o['op']} before the hook's execve: {e.strerror}") from None


def _state_pid(ctx: Context, kind: str) -> int:
    """runtime.md, state's pid: "For hooks executed in the runtime namespace, it is the pid as seen by the runtime.
    For hooks executed in the container namespace, it is the pid as seen by the container": init's own getpid() for
    the hooks init runs (1 in a new pid namespace), its host pid for the runtime's."""
    return os.getpid() if kind in IN_CONTAINER else ctx.init_pid


def _state_json(state: dict) -> bytes:
    """json.dumps without the json module: strings, ints and one level of string-valued objects."""
    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{_json.encode_basestring_ascii(k)}: {value(x)}" for k, x in v.items()) + "}"
        return str(v) if isinstance(v, int) else _json.encode_basestring_ascii(str(v))
    return value(state).encode()


def _run(path: str, argv: list[str], environ: dict, stdin: bytes, timeout: int | None,
         become: "Callable[[], None]") -> tuple[int | None, bytes]:
    """fork + execve (subprocess cannot be imported after pivot_root); exit status, or None on timeout. The child
    calls `become` (hook's steps) last before execve: after a seccomp_load it may make no call but theirs."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            restore_default_signals()
            become()
            os.execve(path, argv, environ)
        except OSError as e:
            os.write(2, f"{path}: {e.strerror}\n".encode())
        finally:
            os._exit(127)
    os.close(in_r)
    os.close(out_w)
    os.set_blocking(in_w, False)  # the state may be larger than the pipe: a hook that never reads must not block
    os.set_blocking(out_r, False)  # us past its timeout, so stdin is fed in this loop, under the same deadline
    pending: bytes | None = stdin
    output, deadline = b"", time.monotonic() + timeout if timeout else None
    try:
        while True:
            pending = _feed(in_w, pending)
            output = (output + _drain(out_r))[-4096:]
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), (output + _drain(out_r))[-4096:]
            if deadline and time.monotonic() > deadline:
                os.killpg(pid, SIGKILL)
                os.waitpid(pid, 0)
                return None, output
            time.sleep(0.005)
    finally:
        if pending is not None:
            os.close(in_w)
        os.close(out_r)


def _feed(fd: int, data: bytes | None) -> bytes | None:
    """Write what the pipe takes now; close it once all is written (the hook sees EOF). None: closed."""
    if data is None:
        return None
    try:
        data = data[os.write(fd, data):] if data else data
    except BlockingIOError:
        return data
    except BrokenPipeError:  # the hook closed its stdin: it does not want the rest
        data = b""
    if data:
        return data
    os.close(fd)
    return None


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""
