"""seccomp: the profile is compiled to classic BPF here, with libseccomp (pyseccomp), so the executor
only loads bytes. The plan also carries libseccomp's pseudo-filter text, for people to read."""

import binascii  # not base64, which imports re (and enum): ms of every compile
import os

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
# `ldconfig -p` in a subprocess for each (~20 ms of compile); offered these first, it needs neither run. Where both
# load, pyseccomp gets a stand-in ctypes.util that knows them: the real module imports subprocess, shutil, tempfile
# and re (~14 ms of a cold compile, more when its optional imports make the launcher load site).
SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def _import_pyseccomp():
    import ctypes
    import sys

    if "pyseccomp" in sys.modules:
        return sys.modules["pyseccomp"]
    if "ctypes.util" not in sys.modules and _sonames_load(ctypes):
        return _import_with_stand_in(ctypes, sys)
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


def _sonames_load(ctypes) -> bool:
    try:
        for soname in SONAMES.values():
            ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def _import_with_stand_in(ctypes, sys):
    """Import pyseccomp with a ctypes.util whose find_library knows SONAMES alone, then take it away again."""
    from types import ModuleType

    stand_in = ModuleType("ctypes.util")
    stand_in.find_library = SONAMES.get  # type: ignore[attr-defined]
    sys.modules["ctypes.util"] = ctypes.util = stand_in  # what `import ctypes.util` finds, and ctypes.util names
    try:
        import pyseccomp
    finally:
        del sys.modules["ctypes.util"]
        del ctypes.util
    return pyseccomp


def compile_filter(seccomp: dict) -> dict:
    """-> the seccomp_load op's arguments: bpf (base64), flags, pfc."""
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
    bpf = binascii.b2a_base64(_export(f.export_bpf), newline=False).decode()
    return {"bpf": bpf, "flags": seccomp.get("flags", []), "pfc": _export(f.export_pfc).decode()}


def _export(method) -> bytes:
    """libseccomp writes to an fd: an in-memory file (tempfile's import alone costs more than the export)."""
    with open(os.memfd_create("mrunc-seccomp", os.MFD_CLOEXEC), "w+b") as out:
        method(out)
        out.seek(0)
        return out.read()
