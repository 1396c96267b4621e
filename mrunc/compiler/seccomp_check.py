"""Rule 8 of order.py, checked: every syscall init makes after seccomp_load must pass the plan's own filter.

What init makes after the filter is declared where it is made: each op in the op table (`@op(..., syscalls=,
fallback=)` in executor/ops_*.py), the executor's own between ops in executor/run.py (AFTER_FILTER_*). Each is run
through the plan's BPF (review/bpf.py's emulator) for the executor's architecture. The compiler refuses a config
whose filter denies one that is always made (compile.py), and notes one made only on a fallback or failure path;
`mrunc verify` reports both for a plan file. No reorder can help: with noNewPrivileges only execve follows the
filter already, and without it the filter cannot load after the capability drop (it needs CAP_SYS_ADMIN).
A startContainer hook's child loads the same filter and then runs only the ops its `as_process` names, which are
init's own steps after that load (plan.py checks it), and execve: so checking init's covers it.
"""

from mrunc.executor.ops import OPS
from mrunc.executor.run import AFTER_FILTER_ALWAYS, AFTER_FILTER_HANDOVER, AFTER_FILTER_ON_FAILURE
from mrunc.review import bpf

# AUDIT_ARCH_* of the architectures the executor runs on (libc.py: x86_64 syscall numbers), and the numbers of
# the syscalls declared below and in the op table (asm/unistd_64.h; tests check them against libseccomp's).
AUDIT_ARCH = {"x86_64": 0xC000003E}
NUMBERS = {"x86_64": {"read": 0, "write": 1, "close": 3, "lseek": 8, "mmap": 9, "munmap": 11, "brk": 12,
                      "rt_sigaction": 13, "ioctl": 16, "access": 21, "sendmsg": 46, "recvmsg": 47, "execve": 59,
                      "getcwd": 79, "chdir": 80, "fchdir": 81, "umask": 95, "setgroups": 116, "setresuid": 117,
                      "setresgid": 119, "capset": 126, "prctl": 157, "exit_group": 231, "openat": 257,
                      "newfstatat": 262, "seccomp": 317, "close_range": 436, "openat2": 437}}
ALLOWED = {bpf.ACTIONS["ALLOW"], bpf.ACTIONS["LOG"]}  # TRACE without a tracer, ERRNO, TRAP, KILL: denied

# The executor's own, declared beside the code that makes them (executor/run.py): always possible (its
# allocator), when a runtime op follows the filter (the hand-over), only to report an op's failure.
EXECUTOR_ALWAYS = AFTER_FILTER_ALWAYS
EXECUTOR_HANDOVER = AFTER_FILTER_HANDOVER
EXECUTOR_ON_FAILURE = AFTER_FILTER_ON_FAILURE


class Denial:
    """A plain class, not a dataclass: every compile with a seccomp profile imports this module, and dataclasses
    (re, enum, inspect) would cost it ~10 ms."""

    def __init__(self, load: int, index: int, op: str, syscall: str, action: int, always: bool, when: str) -> None:
        self.load = load  # index of the seccomp_load op
        self.index = index  # index of the op making the syscall; the load's own for the executor's
        self.op = op
        self.syscall = syscall
        self.action = action
        self.always = always  # made every time: a plan needing it cannot run; else on a fallback or failure path
        self.when = when

    def describe(self, ops: list[dict]) -> str:
        o = ops[self.index]
        who = f"op {self.index} {o['op']} ({o['src']})" if self.op == o["op"] else self.op
        return (f"the filter loaded at op {self.load} denies {self.syscall} ({_action(self.action)}), which {who} "
                f"makes after it {self.when}")


def denials(ops: list[dict], arch: str) -> list[Denial]:
    """The syscalls made in init after each seccomp_load that its filter does not allow."""
    found: list[Denial] = []
    for load, o in enumerate(ops):
        if o["op"] == "seccomp_load" and o["proc"] == "init":
            insns = bpf.decode(o["args"]["bpf"])
            found += _after(ops, load, insns, arch)
    return found


def _after(ops: list[dict], load: int, insns: list, arch: str) -> list[Denial]:
    checks: list[tuple[int, str, tuple, bool, str]] = []  # (index, who, calls, always, when)
    for i in range(load + 1, len(ops)):
        o = ops[i]
        if o["proc"] != "init":
            checks.append((i, o["op"], EXECUTOR_HANDOVER, True, f"(init hands op {i} to runtime and waits)"))
            continue
        entry = OPS.get(o["op"])
        if entry is None or entry.syscalls is None:
            checks.append((i, o["op"], ("an undeclared syscall",), True, "(the op table declares none for it)"))
            continue
        checks.append((i, o["op"], entry.syscalls, True, "every time"))
        checks.append((i, o["op"], entry.fallback, False, "on its fallback path (see its doc)"))
    checks.append((load, "the executor between ops", EXECUTOR_ALWAYS, True, "whenever the interpreter's heap "
                   "grows or shrinks"))
    checks.append((load, "the executor", EXECUTOR_ON_FAILURE, False, "only to report an op's failure"))
    found = []
    for index, who, calls, always, when in checks:
        for call in calls:
            name, args = (call, ()) if isinstance(call, str) else (call[0], tuple(call[1:]))
            action = verdict(insns, name, args, arch)
            if action not in ALLOWED:
                found.append(Denial(load, index, who, name, action, always, when))
    return found


def verdict(insns: list, name: str, args: tuple[int, ...], arch: str) -> int:
    """The filter's action for syscall `name` with leading arguments `args` (the rest 0) on `arch`; an
    architecture or syscall this module has no number for is denied (KILL), so it is never waved through."""
    number = NUMBERS.get(arch, {}).get(name)
    if number is None or arch not in AUDIT_ARCH:
        return bpf.ACTIONS["KILL"]
    return bpf.run(insns, number, AUDIT_ARCH[arch], (*args, *(0,) * (6 - len(args))))


def _action(value: int) -> str:
    names = {v: k for k, v in bpf.ACTIONS.items() if k != "KILL_THREAD"}
    if value in names:
        return names[value]
    for name, base in bpf.ACTIONS_WITH_DATA.items():
        if value & 0xFFFF0000 == base:
            return f"{name}({value & 0xFFFF})"
    return f"{value:#x}"


def rule_pointer(seccomp: dict, syscall: str, src: str) -> str:
    """The field of the profile that decides `syscall`: the first rule naming it with an action other than allow
    or log, else defaultAction (a rule allowing it only for other arguments, say)."""
    for i, rule in enumerate(seccomp.get("syscalls", [])):
        if syscall in rule.get("names", []) and rule.get("action") not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
            return f"{src}/syscalls/{i}"
    return f"{src}/defaultAction"


def refuse_denied(ops: list[dict], arch: str, seccomp: dict | None, src: str) -> list[str]:
    """Raise ConfigError for the first syscall always made after the filter that it denies; return notes for
    those made only on a fallback or failure path. `seccomp`: the profile from the config (None for a filter
    taken from elsewhere, as `mrunc exec ID` takes the container's: the pointer is then `src`)."""
    from mrunc.compiler.errors import ConfigError

    notes = []
    for d in denials(ops, arch):
        where = rule_pointer(seccomp, d.syscall, src) if seccomp else src
        if d.always:
            hint = ("allow it in the profile" if d.syscall != "an undeclared syscall" else
                    "declare the op's syscalls in the op table")
            if any(o["op"] == "set_ids" for o in ops[d.load + 1:]):
                hint += ", or set noNewPrivileges (the filter then loads after the id change, right before execve)"
            raise ConfigError(where, f"{d.describe(ops)}; init cannot start the process; {hint}")
        notes.append(f"{where}: {d.describe(ops)}")
    return list(dict.fromkeys(notes))
