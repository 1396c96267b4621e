"""Read a seccomp_load op without libseccomp: decode its BPF (8-byte sock_filter records), parse its pseudo-filter
text (pfc), and check that the two say the same thing.

The check: the BPF returns exactly the actions the pfc names, and, run on the syscalls the pfc lists, it gives
each the action the pfc gives it.
"""

import binascii
import struct

# Every compile with a seccomp profile checks its filter with run() (compiler/seccomp_check.py): so neither re nor
# dataclasses (re, enum, inspect: ~10 ms) at import; re is imported where the pseudo-filter text is parsed.

RECORD = struct.Struct("<HBBI")  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
MAX_INSNS = 4096  # BPF_MAXINSNS
SECCOMP_DATA_SIZE = 64  # struct seccomp_data: nr, arch, instruction_pointer, args[6]
LD_W_ABS, RET_K, RET_A, JA = 0x20, 0x06, 0x16, 0x05
CONDITIONAL_JUMPS = {0x15, 0x25, 0x35, 0x45, 0x1D, 0x2D, 0x3D, 0x4D}  # JEQ/JGT/JGE/JSET, K and X
# What the kernel's seccomp_check_filter admits besides the above: loads, stores, ALU, TAX/TXA.
OTHER_CODES = {0x80, 0x81, 0x00, 0x01, 0x60, 0x61, 0x02, 0x03, 0x07, 0x87, 0x84,
               *(cls | op | src for cls in (0x04,) for op in range(0x00, 0xB0, 0x10) for src in (0x00, 0x08))}
ACTIONS = {"KILL": 0x00000000, "KILL_THREAD": 0x00000000, "KILL_PROCESS": 0x80000000, "TRAP": 0x00030000,
           "LOG": 0x7FFC0000, "ALLOW": 0x7FFF0000, "NOTIFY": 0x7FC00000}
ACTIONS_WITH_DATA = {"ERRNO": 0x00050000, "TRACE": 0x7FF00000}
NOT_ON_THIS_ARCH = 0x80000000  # libseccomp's pseudo numbers for syscalls an arch lacks sit above this


class BpfError(Exception):
    """The BPF does not decode, or disagrees with its pseudo-filter text."""


class Pfc:
    def __init__(self) -> None:
        self.default = ""
        self.bad_arch = ""
        self.arches: dict[str, int] = {}
        self.rules: dict[str, list[str]] = {}  # syscall name -> its rule blocks
        self.numbers: set[int] = set()
        self.by_arch: dict[int, dict[int, str]] = {}  # arch -> nr -> its unconditional action
        self.actions: set[str] = set()


def parse_pfc(text: str) -> Pfc:
    import re

    pfc = Pfc()
    block: list[str] = []
    name, context, arch, nr = None, "", 0, 0
    for raw in text.splitlines():
        line = raw.strip()
        if m := re.match(r"# filter for arch (\S+) \((\d+)\)", line):
            arch = pfc.arches[m[1]] = int(m[2])
        elif m := re.match(r'# filter for syscall "(\S+)" \((\d+)\)', line):
            _close(pfc, name, block, arch, nr)
            name, block, nr = m[1], [], int(m[2])
            pfc.numbers.add(nr)
        elif line in ("# default action", "# invalid architecture action"):
            _close(pfc, name, block, arch, nr)
            name, block, context = None, [], line
        elif m := re.match(r"action (\S+);", line):
            pfc.actions.add(m[1])
            if name:
                block.append(line)
            elif context == "# default action":
                pfc.default = m[1]
            elif context:
                pfc.bad_arch = m[1]
        elif line.startswith("if (") and not line.startswith(("if ($syscall", "if ($arch")):
            block.append(line)  # other comparisons on arguments
    _close(pfc, name, block, arch, nr)
    return pfc


def _close(pfc: Pfc, name: str | None, block: list[str], arch: int, nr: int) -> None:
    if not name or not block:
        return
    text = " ".join(block)
    if text not in pfc.rules.setdefault(name, []):
        pfc.rules[name].append(text)
    if nr < NOT_ON_THIS_ARCH:
        unconditional = len(block) == 1 and block[0].startswith("action ")
        pfc.by_arch.setdefault(arch, {})[nr] = block[0][len("action "):-1] if unconditional else ""


def action_value(action: str) -> int:
    if action in ACTIONS:
        return ACTIONS[action]
    import re

    m = re.fullmatch(r"(\w+)\((\d+)\)", action)
    if not m or m[1] not in ACTIONS_WITH_DATA:
        raise BpfError(f"pfc: unknown action {action!r}")
    return ACTIONS_WITH_DATA[m[1]] | (int(m[2]) & 0xFFFF)


def decode(b64: str) -> list[tuple[int, int, int, int]]:
    """The sock_filter records, checked as the kernel would: size, known codes, jumps in range, ends in RET."""
    try:
        raw = binascii.a2b_base64(b64, strict_mode=True)  # base64.b64decode(validate=True), without its re
    except (binascii.Error, ValueError) as e:
        raise BpfError(f"bpf: not base64: {e}") from None
    if not raw or len(raw) % RECORD.size:
        raise BpfError(f"bpf: {len(raw)} bytes is not a whole number of 8-byte sock_filter records")
    insns = [RECORD.unpack_from(raw, off) for off in range(0, len(raw), RECORD.size)]
    if len(insns) > MAX_INSNS:
        raise BpfError(f"bpf: {len(insns)} instructions; the kernel takes at most {MAX_INSNS}")
    for i, (code, jt, jf, k) in enumerate(insns):
        _check_insn(i, len(insns), code, jt, jf, k)
    if insns[-1][0] not in (RET_K, RET_A):
        raise BpfError(f"bpf: the last instruction ({len(insns) - 1}) is not a return")
    return insns


def _check_insn(i: int, n: int, code: int, jt: int, jf: int, k: int) -> None:
    if code == LD_W_ABS and (k % 4 or k >= SECCOMP_DATA_SIZE):
        raise BpfError(f"bpf: instruction {i} loads offset {k}, outside struct seccomp_data")
    elif code in CONDITIONAL_JUMPS and max(jt, jf) + i + 1 >= n:
        raise BpfError(f"bpf: instruction {i} jumps past the end")
    elif code == JA and k + i + 1 >= n:
        raise BpfError(f"bpf: instruction {i} jumps past the end")
    elif code not in CONDITIONAL_JUMPS | OTHER_CODES | {LD_W_ABS, JA, RET_K, RET_A}:
        raise BpfError(f"bpf: instruction {i} has code {code:#06x}, which seccomp does not allow")


def check_matches(b64: str, pfc_text: str) -> list[str]:
    """Where the BPF and the pfc disagree (empty when they agree). Raises BpfError if the BPF does not decode.

    The BPF is run (emulated) for every syscall each architecture's pfc block names without conditions, for a
    syscall it does not name (the default action) and for an unknown architecture (the bad-arch action)."""
    insns = decode(b64)
    pfc = parse_pfc(pfc_text)
    problems = []
    returned = {k for code, _, _, k in insns if code == RET_K}
    named = {action_value(a) for a in pfc.actions}
    if returned != named:
        problems.append(f"returns {_hex(returned - named) or 'nothing'} that the pfc does not name, and not "
                        f"{_hex(named - returned) or 'nothing'} that it does")
    if not pfc.default or not pfc.bad_arch:
        return problems + ["the pfc names no default or invalid-architecture action"]
    for arch, table in sorted(pfc.by_arch.items()):
        unnamed = next(n for n in range(1024) if n not in table)
        cases = [*((nr, action) for nr, action in sorted(table.items()) if action), (unnamed, pfc.default)]
        for nr, action in cases:
            got = run(insns, nr, arch)
            if got != action_value(action):
                problems.append(f"syscall {nr} on arch {arch:#x}: the BPF returns {got:#x}, the pfc says {action}")
    if (got := run(insns, 0, 0)) != action_value(pfc.bad_arch):
        problems.append(f"an unknown arch: the BPF returns {got:#x}, the pfc says {pfc.bad_arch}")
    return problems[:10]


def run(insns: list[tuple[int, int, int, int]], nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> int:
    """Run a checked filter on seccomp_data(nr, arch, ip 0, args) and return its verdict."""
    data = struct.pack("<iIQ6Q", nr if nr < NOT_ON_THIS_ARCH else nr - (1 << 32), arch, 0, *args)
    a = x = pc = 0
    mem = [0] * 16
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
        elif code in CONDITIONAL_JUMPS:
            operand = x if code & 0x08 else k
            test = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}[code & 0xF0]
            pc += jt if test else jf
        elif code == JA:
            pc += k
        elif code in (RET_K, RET_A):
            return k if code == RET_K else a
        elif code & 0x07 == 0x04:
            a = _alu(code & 0xF0, a, x if code & 0x08 else k)
        else:
            a, x, mem = _move(code, k, a, x, mem)


def _alu(op: int, a: int, b: int) -> int:
    ops = {0x00: a + b, 0x10: a - b, 0x20: a * b, 0x30: a // b if b else 0, 0x40: a | b, 0x50: a & b,
           0x60: a << (b & 31), 0x70: a >> (b & 31), 0x80: -a, 0x90: a % b if b else 0, 0xA0: a ^ b}
    return ops[op] & 0xFFFFFFFF


def _move(code: int, k: int, a: int, x: int, mem: list[int]) -> tuple[int, int, list[int]]:
    """Loads of immediates, lengths and scratch memory, stores, TAX and TXA."""
    if code == 0x00:
        a = k
    elif code == 0x01:
        x = k
    elif code in (0x80, 0x81):
        a, x = (SECCOMP_DATA_SIZE, x) if code == 0x80 else (a, SECCOMP_DATA_SIZE)
    elif code in (0x60, 0x61, 0x02, 0x03) and k >= len(mem):
        raise BpfError(f"bpf: scratch memory slot {k} does not exist")
    elif code == 0x60:
        a = mem[k]
    elif code == 0x61:
        x = mem[k]
    elif code in (0x02, 0x03):
        mem[k] = a if code == 0x02 else x
    elif code == 0x07:
        x = a
    elif code == 0x87:
        a = x
    return a, x, mem


def _hex(values: set[int]) -> str:
    return ", ".join(f"{v:#x}" for v in sorted(values)[:8]) + (" ..." if len(values) > 8 else "")
