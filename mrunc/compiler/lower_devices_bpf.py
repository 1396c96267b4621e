"""Device rules on cgroup v2: no devices.allow/deny files there, so the rules become a BPF_PROG_TYPE_CGROUP_DEVICE
program, assembled here at compile time. The executor only loads and attaches its bytes.

The kernel calls the program on each open/mknod of a device node with (access << 16 | type, major, minor) and
allows it if the program returns 1. The program is generated from the v1 controller's state after the rules
(device_rules.py emulates it, as runc does), so v1 and v2 decide alike: it checks each exception in the kernel's
order and the first match decides, then returns the default. With a deny default an exception matches a request
whose accesses it holds all of; with an allow default, one that asks for any access it holds.
"""

import struct

from mrunc.compiler.device_rules import DeviceRules

TYPES = {"c": 2, "b": 1}  # BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK
ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
ALL_ACCESS = 7

# Opcodes (linux/bpf.h): class | operation | source.
LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
MOV_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X: dst = src
MOV_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
AND_K = 0x57  # BPF_ALU64 | BPF_AND | BPF_K: dst &= imm
RSH_K = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: pc += off
EXIT = 0x95
R_TYPE, R_ACCESS, R_MAJOR, R_MINOR, R_TMP = 2, 3, 4, 5, 6

Insn = tuple[int, int, int, int, int]  # opcode, dst, src, off, imm


def _load_context() -> list[Insn]:
    """r2 = type, r3 = access, r4 = major, r5 = minor, from struct bpf_cgroup_dev_ctx at r1."""
    return [(LDX_W, R_TYPE, 1, 0, 0), (MOV_X, R_ACCESS, R_TYPE, 0, 0), (AND_K, R_TYPE, 0, 0, 0xFFFF),
            (RSH_K, R_ACCESS, 0, 0, 16), (LDX_W, R_MAJOR, 1, 4, 0), (LDX_W, R_MINOR, 1, 8, 0)]


def _rule_block(allow: bool, kind: str, major: int | None, minor: int | None, access: str) -> list[Insn]:
    """Tests that jump past the block when the exception does not match, then return its verdict."""
    bits = sum(ACCESS[a] for a in set(access))
    tests: list[list[Insn]] = [[(JNE_K, R_TYPE, 0, None, TYPES[kind])]]
    if bits != ALL_ACCESS:
        if allow:  # skip unless every requested access is held: request & ~bits == 0
            tests.append([(MOV_X, R_TMP, R_ACCESS, 0, 0), (AND_K, R_TMP, 0, 0, ALL_ACCESS & ~bits),
                          (JNE_K, R_TMP, 0, None, 0)])
        else:  # skip unless some requested access is held: request & bits != 0
            tests.append([(MOV_X, R_TMP, R_ACCESS, 0, 0), (AND_K, R_TMP, 0, 0, bits), (JEQ_K, R_TMP, 0, None, 0)])
    if major is not None:
        tests.append([(JNE_K, R_MAJOR, 0, None, major)])
    if minor is not None:
        tests.append([(JNE_K, R_MINOR, 0, None, minor)])
    block = [insn for test in tests for insn in test] + [(MOV_K, 0, 0, 0, int(allow)), (EXIT, 0, 0, 0, 0)]
    # A failed test jumps to the first instruction after the block (offsets count from the next one).
    return [(op, dst, src, len(block) - i - 1 if off is None else off, imm) for i, (op, dst, src, off, imm)
            in enumerate(block)]


def assemble(rules: DeviceRules) -> list[Insn]:
    """The program: each exception in order (its verdict is the default's opposite), then the default."""
    program = _load_context()
    for e in rules.exceptions:
        program += _rule_block(not rules.default_allow, e.kind, e.major, e.minor, e.access)
    return program + [(MOV_K, 0, 0, 0, int(rules.default_allow)), (EXIT, 0, 0, 0, 0)]


def encode(program: list[Insn]) -> bytes:
    """struct bpf_insn: u8 code, u8 dst:4 src:4 (dst in the low bits on little-endian), s16 off, s32 imm."""
    return b"".join(struct.pack("<BBhi", op, dst | src << 4, off, imm) for op, dst, src, off, imm in program)


def decode(code: bytes) -> list[Insn]:
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("<BBhi", code[i:i + 8])
        out.append((op, regs & 0xF, regs >> 4, off, imm))
    return out


def disassemble(code: bytes) -> list[str]:
    """One line per instruction, in the style of the kernel's verifier log."""
    lines = []
    for i, (op, dst, src, off, imm) in enumerate(decode(code)):
        text = {
            LDX_W: f"r{dst} = *(u32 *)(r{src} + {off})", MOV_X: f"r{dst} = r{src}", MOV_K: f"r{dst} = {imm}",
            AND_K: f"r{dst} &= {imm:#x}", RSH_K: f"r{dst} >>= {imm}", EXIT: "exit",
            JNE_K: f"if r{dst} != {imm} goto {i + 1 + off}", JEQ_K: f"if r{dst} == {imm} goto {i + 1 + off}",
        }.get(op, f"unknown opcode {op:#x}")
        lines.append(f"{i:3}: {text}")
    return lines
