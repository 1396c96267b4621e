"""Boot a user-mode Linux guest with a pure cgroup v2 hierarchy and run pytest inside it.

The guest's root is the host's / through hostfs, mounted read-only, so the guest never writes to the host's
files; its one writable host directory is the results directory (mounted at /mnt in the guest). init.sh is
the guest's pid 1. `linux.uml` exits 0 whatever happened, so results are read from files the guest wrote. Its one
block device, /dev/ubda, is a sparse file the guest can only read (for io.max).

Host quirk: Debian's UML 6.1 sizes its XSAVE buffer for CPUs without AMX; on an AMX host the host kernel
refuses its PTRACE_SETREGSET (EFAULT) and the guest's init dies at once. A seccomp filter on the UML
process makes PTRACE_GETREGSET(NT_X86_XSTATE) fail, so UML falls back to the x87/SSE register calls.
"""

import errno
import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

UML = "/usr/bin/linux.uml"
INIT = Path(__file__).with_name("init.sh")
PTRACE_GETREGSET = 0x4204
NT_X86_XSTATE = 0x202
DISK_SIZE = 8 << 20


@dataclass
class GuestRun:
    results: dict[str, dict]  # node id -> {"outcome", "text"}
    status: str  # pytest's exit status in the guest, "" if it never finished
    console: str
    pytest_log: str
    timed_out: bool

    def console_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.console.splitlines()[-lines:])
        log = "\n".join(self.pytest_log.splitlines()[-lines:])
        stopped = "--- the guest was stopped at its time limit ---\n" if self.timed_out else ""
        return f"{stopped}--- guest console (tail) ---\n{tail}\n--- guest pytest output (tail) ---\n{log}"


def _no_xstate_regset() -> None:
    """In the forked child, before exec: the seccomp filter described in the module docstring."""
    import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)
    f.add_rule(sc.ERRNO(errno.EIO), "ptrace", sc.Arg(0, sc.EQ, PTRACE_GETREGSET), sc.Arg(2, sc.EQ, NT_X86_XSTATE))
    f.load()


def run_pytest(repo: Path, python: str, pytest_args: list[str], workdir: Path, timeout: float = 420,
               mem: str = "768M") -> GuestRun:
    """Boot the guest, run `python -m pytest ARGS` in REPO inside it, and return what it reported."""
    results = workdir / "results"
    uml_dir = workdir / "uml"  # UML's pid file and mconsole socket; without it UML makes ~/.uml
    results.mkdir(parents=True)
    uml_dir.mkdir()
    disk = workdir / "disk.img"  # the guest's one block device (/dev/ubda, read-only): io.max needs a disk
    disk.write_bytes(b"")
    os.truncate(disk, DISK_SIZE)
    (results / "args").write_text(" ".join(pytest_args))
    command = [UML, f"mem={mem}", "rootfstype=hostfs", "rootflags=/", "ro", f"init={INIT}", "con=null",
               "ssl=null", "con0=fd:0,fd:1", f"ubd0r={disk}", f"uml_dir={uml_dir}",
               f"umid=mrunc-{uuid.uuid4().hex[:8]}",
               f"GUEST_RESULTS={results}", f"GUEST_REPO={repo}", f"GUEST_PYTHON={python}"]
    console = workdir / "console.log"
    with open(console, "wb") as out:
        try:
            timed_out = subprocess.run(["timeout", "-k", "5", str(timeout), *command], stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, preexec_fn=_no_xstate_regset,
                                       timeout=timeout + 30).returncode == 124
        except subprocess.TimeoutExpired:
            timed_out = True
    return GuestRun(_read_report(results / "report.jsonl"), _read(results / "status").strip(),
                    _read(console), _read(results / "pytest.log"), timed_out)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _read_report(path: Path) -> dict[str, dict]:
    results = {}
    for line in _read(path).splitlines():
        entry = json.loads(line)
        results[entry.pop("nodeid")] = entry
    return results


def available() -> str:
    """'' if the guest can boot here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(UML, os.X_OK):
        return f"{UML} is missing (Debian package user-mode-linux; scripts/setup.sh installs it)"
    return ""
