"""seccomp: the profile is compiled to classic BPF here, with libseccomp (pyseccomp), so the executor
only loads bytes. The plan also carries libseccomp's pseudo-filter text, for people to read.

A command may compile the filter ahead, in a forked child, while it validates the config (`compiled_ahead`):
pyseccomp's import and libseccomp's work (~25 ms for podman's profile) then run on another core, beside
jsonschema's import (~60 ms), instead of after it. The plan is the same either way."""

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from mrunc.compiler.errors import ConfigError, pointer

ARCHES = {"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
          "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64"}
COMPARE = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
           "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
EPERM = 1
UNKNOWN_SYSCALL = -1  # libseccomp's __NR_SCMP_ERROR


def _action(sc, name: str, errno_ret: int | None, default_errno: int) -> int:
    return {
        "SCMP_ACT_KILL": sc.KILL, "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD, "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS,
        "SCMP_ACT_TRAP": sc.TRAP, "SCMP_ACT_ALLOW": sc.ALLOW, "SCMP_ACT_LOG": sc.LOG,
        "SCMP_ACT_ERRNO": sc.ERRNO(errno_ret if errno_ret is not None else default_errno),
        "SCMP_ACT_TRACE": sc.TRACE(errno_ret if errno_ret is not None else default_errno),
    }[name]


# Sonames fixed by their ABIs. pyseccomp looks libc and libseccomp up with ctypes.util.find_library, which runs
# `ldconfig -p` in a subprocess for each (~20 ms of compile); offered these first, it needs neither run.
SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def _import_pyseccomp():
    import ctypes
    import ctypes.util

    find_library = ctypes.util.find_library

    def known_soname(name: str) -> str | None:
        try:
            ctypes.CDLL(SONAMES[name])
            return SONAMES[name]
        except (KeyError, OSError):  # another name, or another soname on this host: ask ldconfig
            return find_library(name)

    ctypes.util.find_library = known_soname
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = find_library
    return pyseccomp


def compile_filter(seccomp: dict) -> dict:
    """-> the seccomp_load op's arguments: bpf (base64), flags, pfc. Taken from the child compiling them ahead,
    if there is one for this profile and it succeeded; else compiled here (which raises what it found wrong)."""
    global _ahead
    if _ahead and _ahead.profile == json.dumps(seccomp, sort_keys=True):
        child, _ahead = _ahead, None
        args = child.result()
        if args is not None:
            return args
    return _compile(seccomp)


def _compile(seccomp: dict) -> dict:
    sc = _import_pyseccomp()

    default_errno = seccomp.get("defaultErrnoRet", EPERM)
    default = _action(sc, seccomp["defaultAction"], default_errno, default_errno)
    f = sc.SyscallFilter(default)
    f.set_attr(sc.Attr.CTL_NNP, 0)  # no_new_privs is its own op, placed by the plan
    for i, arch in enumerate(seccomp.get("architectures", [])):
        if arch not in ARCHES:
            raise ConfigError(pointer("linux", "seccomp", "architectures", i),
                              f"{arch} is not supported on this host; allowed: {', '.join(ARCHES)}")
        token = getattr(sc.Arch, ARCHES[arch].upper())
        if not f.exist_arch(token):
            f.add_arch(token)
    for i, rule in enumerate(seccomp.get("syscalls", [])):
        where = pointer("linux", "seccomp", "syscalls", i)
        action = _action(sc, rule["action"], rule.get("errnoRet"), EPERM)
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default; it would change nothing
        conditions = [sc.Arg(a["index"], getattr(sc, COMPARE[a["op"]]), a["value"], a.get("valueTwo", 0))
                      for a in rule.get("args", [])]
        # libseccomp takes one condition per argument index in a rule; runc splits such rules, and so do we.
        groups = [conditions] if len({a["index"] for a in rule.get("args", [])}) == len(conditions) else \
            [[c] for c in conditions]
        for j, name in enumerate(rule["names"]):
            if sc.resolve_syscall(sc.Arch.NATIVE, name) == UNKNOWN_SYSCALL:
                raise ConfigError(f"{where}/names/{j}", f"unknown syscall {name!r}; allowed: names libseccomp knows")
            for group in groups:
                try:
                    f.add_rule(action, name, *group)
                except OSError as e:
                    raise ConfigError(f"{where}/names/{j}", f"libseccomp refused the rule: {e}") from None
    return {"bpf": base64.b64encode(_export(f.export_bpf)).decode(), "flags": seccomp.get("flags", []),
            "pfc": _export(f.export_pfc).decode()}


def _export(method) -> bytes:
    """libseccomp writes to an fd: an in-memory file (tempfile's import alone costs more than the export)."""
    with open(os.memfd_create("mrunc-seccomp", os.MFD_CLOEXEC), "w+b") as out:
        method(out)
        out.seek(0)
        return out.read()


class _Child:
    """A forked child compiling one profile, its result (the seccomp_load arguments as JSON) on a pipe."""

    def __init__(self, seccomp: dict) -> None:
        self.profile = json.dumps(seccomp, sort_keys=True)
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read)
            _child_main(seccomp, write)
        os.close(write)
        self.pipe = open(read, "rb")
        self.pidfd = os.pidfd_open(self.pid)  # signals reach this child even if its pid is reaped and reused

    def result(self) -> dict | None:
        """The child's result, or None if it failed: the config was not yet validated when it started."""
        with self.pipe:
            data = self.pipe.read()
        return json.loads(data) if self._reap() == 0 else None

    def kill(self) -> None:
        import signal

        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:  # gone already
            pass
        self.pipe.close()
        self._reap()

    def _reap(self) -> int | None:
        """The child's wait status; None if our caller left SIGCHLD ignored (a process started so inherits
        it), which makes the kernel reap children itself: its exit status is lost, so its result is not used."""
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return None
        finally:
            os.close(self.pidfd)


def _child_main(seccomp: dict, write: int) -> None:
    status = 1
    try:
        with open(write, "wb") as out:
            out.write(json.dumps(_compile(seccomp)).encode())
        status = 0
    except BaseException:  # the parent compiles the profile again and reports the error
        pass
    finally:
        os._exit(status)  # nothing of the parent's (buffers, finally blocks up the stack) runs twice


_ahead: _Child | None = None  # started by compiled_ahead, not yet taken up by compile_filter


@contextmanager
def compiled_ahead(config: object) -> Iterator[None]:
    """Within the block, compile_filter takes `config`'s filter from a child started now. The child gets the
    config unvalidated: whatever it finds wrong, compile_filter compiles the profile again and raises it, after
    validation, as without a child. A child not taken up (the config was refused) is killed on leaving."""
    global _ahead
    linux = config.get("linux") if isinstance(config, dict) else None
    seccomp = linux.get("seccomp") if isinstance(linux, dict) else None
    _ahead = _Child(seccomp) if isinstance(seccomp, dict) else None
    try:
        yield
    finally:
        if _ahead:
            _ahead.kill()
            _ahead = None
