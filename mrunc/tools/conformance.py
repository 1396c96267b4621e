"""Run the OCI runtime-tools validation suite against a runtime: `scripts/conformance.sh` (as root).

The suite (conformance/, built by scripts/conformance-build.sh into build/conformance/runtime-tools) is 58
programs, validation/NAME/NAME.t, that each write configs, drive the runtime through its runc-style CLI (create,
start, state, kill, delete) and print TAP. Each file runs here in its own private mount namespace (the suite's
linux_ns_itype asks for a container without one), its own TMPDIR (its bundles) and its own state root (the
runtime is called through a wrapper that adds `--root` and logs the call), under a time bound.

A file passes when it exits 0 and prints no `not ok` line and no YAML `error` (some files report a failure as
an `error` diagnostic with plan 1..0). After each file, whatever it left on the host is looked for and removed:
processes started from or rooted in its TMPDIR, its state dirs, new cgroups its containers' configs name (or
named after a container), mounts under its TMPDIR; any of them fails the run.

Prints a table (file, result, for a failure its first failing line), then `conformance: P/58 files pass (floor
F)`, then the leftovers. Exits 1 if a leftover was found or (for mrunc, the default runtime) if fewer files pass
than the floor in conformance/floor. `--results FILE` writes the outcomes as JSON (docs/conformance.md is made
from two of those: `python -m mrunc.tools.conformance_doc`).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "build" / "conformance" / "runtime-tools"
FLOOR = REPO / "conformance" / "floor"
MRUNC = REPO / ".venv" / "bin" / "mrunc"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroups a test program makes itself (not through the runtime) and leaves when it stops early: util.Fatal
# calls os.Exit, which skips the program's deferred os.RemoveAll
SUITE_OWN_CGROUPS = {"delete_only_create_resources": ("pids/cgrouptest",)}
PLAN = re.compile(r"^1\.\.\d+\s*$")
EXIT_STATUS = re.compile(r"exit status \d+$")
RUNC_MSG = re.compile(r'level=\w+ msg="(.*)"$')  # runc's (logrus) log line


@dataclass
class Outcome:
    name: str
    passed: bool
    reason: str  # for a failure: its first `not ok` line, YAML error, or how the file ended
    seconds: float
    leftovers: list[str] = field(default_factory=list)
    suite_leftovers: list[str] = field(default_factory=list)


@dataclass
class TapTest:
    line: str                 # `ok N - ...` or `not ok N - ...`
    notes: list[str]          # lines outside TAP printed before it (the suite's and the runtime's messages)
    comments: list[str] = field(default_factory=list)  # `# ...` lines right after it (expected vs actual)
    diagnostic: dict = field(default_factory=dict)  # its YAML block (the suite writes JSON there)


def parse_tap(output: str) -> tuple[list[TapTest], dict, list[str]]:
    """The tests, the diagnostic that came before any test (a plan 1..0 failure's), and all notes."""
    tests: list[TapTest] = []
    leading: dict = {}
    notes: list[str] = []
    pending: list[str] = []  # notes since the last test
    block: list[str] | None = None
    for line in output.splitlines():
        if block is not None:
            if line.strip() == "...":
                (tests[-1].diagnostic if tests else leading).update(_diagnostic(block))
                block = None
            else:
                block.append(line)
        elif line.strip() == "---":
            block = []
        elif line.startswith("# ") and tests and not pending:
            if not line.startswith("# Refer to:"):  # the spec's link, no evidence
                tests[-1].comments.append(line[2:].strip())
        elif line.startswith(("ok ", "not ok ")):
            tests.append(TapTest(line.strip(), pending))
            pending = []
        elif line.strip() and not line.startswith(("TAP version", "Refer to:")) and not PLAN.match(line):
            notes.append(_runtime_message(line.strip()))
            pending.append(notes[-1])
    return tests, leading, notes


def _diagnostic(block: list[str]) -> dict:
    try:
        parsed = json.loads("\n".join(block))
    except ValueError:  # plain YAML: keep its `key: value` lines
        parsed = dict(line.strip().split(": ", 1) for line in block if ": " in line)
    return parsed if isinstance(parsed, dict) else {}


def _detail(diagnostic: dict) -> str:
    """A diagnostic's evidence: the runtime's last stderr line (runc's `msg=` part), else its error."""
    stderr = [line for line in str(diagnostic.get("stderr", "")).splitlines() if line.strip()]
    if stderr:
        return _runtime_message(stderr[-1].strip())
    error = str(diagnostic.get("error", ""))
    if diagnostic.get("expected") is not None or diagnostic.get("actual") is not None:
        error += f" expected {diagnostic.get('expected')!r}, actual {diagnostic.get('actual')!r}"
    return " ".join(line.strip() for line in error.splitlines() if line.strip() and not line.startswith("Refer to"))


def _runtime_message(line: str) -> str:
    """runc logs `time=... level=error msg="..."`: its message alone."""
    msg = RUNC_MSG.search(line)
    return msg.group(1).replace('\\"', '"') if msg else line


def judge(returncode: int | None, output: str) -> tuple[bool, str]:
    """Whether a file passed, and for a failure the line that says why with its evidence.

    Passes: exit 0 and no `not ok`; a diagnostic `error` before any test (plan 1..0) is a failure.
    returncode None: the file timed out.
    """
    tests, leading, notes = parse_tap(output)
    failed = next((t for t in tests if t.line.startswith("not ok")), None)
    if failed:
        detail = _detail(failed.diagnostic) or " / ".join(failed.comments or failed.notes)
        return False, f"{failed.line}: {detail}" if detail else failed.line
    if not tests and "error" in leading:
        detail = _detail(leading)
        error = str(leading["error"]).split("\n")[0]
        return False, f"error: {error}" + (f": {detail}" if detail != error else "")
    if returncode is None:
        return False, "timed out" + (": " + " / ".join(notes) if notes else "")
    if returncode != 0:
        messages = [note for note in notes if not EXIT_STATUS.match(note)]  # the suite's echo of our exit
        return False, f"exit {returncode}: " + (" / ".join(messages or notes) or "no output")
    return True, ""


def last_create_error(workdir: Path) -> str:
    """The runtime's last stderr line from the file's last `create`. The suite sends a create's stderr to a file
    in the bundle and prints it only for some failures; the wrapper hard-links that file into create-stderr/."""
    files = sorted((workdir / "create-stderr").glob("*"), key=lambda p: int(p.name))
    lines = [line for line in files[-1].read_text(errors="replace").splitlines() if line.strip()] if files else []
    return _runtime_message(lines[-1].strip()) if lines else ""


def write_wrapper(runtime: Path, workdir: Path) -> Path:
    """The RUNTIME the suite calls: the real runtime with this file's own state root and seccomp filter cache (so a
    run leaves nothing in /run/mrunc or /var/cache/mrunc). Each call is logged, and each create's config kept
    (configs/ID.json: the cgroups the container may make) and its stderr linked."""
    wrapper = workdir / "runtime"
    (workdir / "configs").mkdir()
    (workdir / "create-stderr").mkdir()
    wrapper.write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> '{workdir}/calls'
if [ "$1" = create ]; then
    bundle=. previous=
    for arg; do [ "$previous" = --bundle ] && bundle=$arg; previous=$arg; done
    eval "id=\\${{$#}}"
    cp "$bundle/config.json" "{workdir}/configs/$id.json" 2>/dev/null
    stderr=$(readlink /proc/$$/fd/2)
    [ -f "$stderr" ] && ln -f "$stderr" "{workdir}/create-stderr/$(wc -l < '{workdir}/calls')"
fi
export MRUNC_SECCOMP_CACHE='{workdir}/seccomp-cache'
exec '{runtime}' --root '{workdir}/state' "$@"
""")
    wrapper.chmod(0o755)
    return wrapper


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # gone, or a kernel thread
        return ""


def _root_mount(pid: str) -> str:
    """The source path of a process's root mount (a container's is its bundle's rootfs)."""
    for line in _read(Path(f"/proc/{pid}/mountinfo")).splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/":
            return fields[3]
    return ""


def leftover_processes(token: str) -> dict[int, str]:
    """Processes of this file: started with its TMPDIR (runtime helpers, hooks) or rooted in it (containers)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        cmdline = _read(entry / "cmdline")
        if token in _read(entry / "environ") or token in cmdline or token in _root_mount(entry.name):
            found[int(entry.name)] = cmdline.strip() or _read(entry / "comm").strip()
    return found


def cgroup_hierarchies() -> list[Path]:
    """The roots of the mounted cgroup hierarchies: /sys/fs/cgroup itself on a cgroup2-only host."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [p for p in CGROUP_ROOT.iterdir() if (p / "cgroup.procs").exists()]


def all_cgroups(depth: int = 6) -> set[Path]:
    found: set[Path] = set()
    level = cgroup_hierarchies()
    for _ in range(depth):
        level = [child for parent in level for child in _subdirs(parent)]
        found.update(level)
    return found


def _subdirs(path: Path) -> list[Path]:
    try:
        return [child for child in path.iterdir() if child.is_dir()]
    except OSError:  # removed meanwhile (other test sessions share the host)
        return []


def cgroups_of(workdir: Path, new: set[Path]) -> list[Path]:
    """Of the cgroups that appeared while the file ran, those its containers could have made: the directories of
    their cgroupsPath and its parents (absolute: below a hierarchy's root; relative: anywhere), or named after
    a container (a runtime's default path). Other sessions' cgroups are left alone."""
    absolute: set[tuple[str, ...]] = set()
    relative: set[tuple[str, ...]] = set()
    names: set[str] = set()
    for config in (workdir / "configs").glob("*.json"):
        names.add(config.stem)
        try:
            path = json.loads(config.read_text()).get("linux", {}).get("cgroupsPath") or ""
        except ValueError:
            continue
        parts = tuple(part for part in path.split("/") if part)
        prefixes = {parts[:n] for n in range(1, len(parts) + 1)}
        (absolute if path.startswith("/") else relative).update(prefixes)
    roots = cgroup_hierarchies()

    def made_by_the_file(cgroup: Path) -> bool:
        below_root = next((cgroup.relative_to(r).parts for r in roots if cgroup.is_relative_to(r)), ())
        return (cgroup.name in names or below_root in absolute
                or any(below_root[-len(suffix):] == suffix for suffix in relative))
    return sorted(filter(made_by_the_file, new))


def host_mounts(token: str) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if token in line.split()[4]]


@dataclass
class Leftovers:
    found: list[str]           # what the runtime left: fails the run
    suite_own: list[str]       # what the test program itself made and left (SUITE_OWN_CGROUPS): reported only
    procs: dict[int, str]
    cgroups: list[Path]


def find_leftovers(name: str, workdir: Path, token: str, cgroups_before: set[Path]) -> Leftovers:
    """What the file left on the host. Waits a little for processes that are exiting."""
    deadline = time.monotonic() + 3
    while (procs := leftover_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    states = sorted(p.name for p in (workdir / "state").glob("*"))
    cgroups = cgroups_of(workdir, all_cgroups() - cgroups_before)
    own = [p for p in cgroups if str(p.relative_to(CGROUP_ROOT)) in SUITE_OWN_CGROUPS.get(name, ())]
    found = [f"process {pid}: {cmd[:100]}" for pid, cmd in sorted(procs.items())]
    found += [f"state dir: {state}" for state in states]
    found += [f"cgroup: {path}" for path in cgroups if path not in own]
    found += [f"mount: {point}" for point in host_mounts(token)]
    return Leftovers(found, [f"cgroup: {path}" for path in own], procs, cgroups)


def clean_up(runtime: Path, workdir: Path, procs: dict[int, str], cgroups: list[Path]) -> None:
    """Remove what a file left, so the next file starts from a clean host."""
    for pid in procs:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.3 if procs else 0)
    for state in (workdir / "state").glob("*"):
        subprocess.run([str(runtime), "--root", str(workdir / "state"), "delete", "--force", state.name],
                       capture_output=True, timeout=30)
    for path in sorted(cgroups, key=lambda p: len(p.parts), reverse=True):  # children first
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
        except OSError as error:  # still has processes: reported as left already
            print(f"conformance: cannot remove {path}: {error.strerror}", file=sys.stderr)


def run_file(name: str, runtime: Path, suite: Path, rundir: Path, timeout: float) -> Outcome:
    workdir = rundir / name
    (workdir / "tmp").mkdir(parents=True)
    token = f"{rundir.name}/{name}/"
    wrapper = write_wrapper(runtime, workdir)
    cgroups_before = all_cgroups()
    env = dict(os.environ, RUNTIME=str(wrapper), TMPDIR=str(workdir / "tmp"))
    command = ["unshare", "-m", "--propagation", "private", f"validation/{name}/{name}.t"]
    started = time.monotonic()
    with open(workdir / "output", "w+") as out:
        # own session: on a timeout the whole group (the file, its runtime calls) is killed
        process = subprocess.Popen(command, cwd=suite, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            returncode = None
        out.seek(0)
        output = out.read()
    seconds = time.monotonic() - started
    passed, reason = judge(returncode, output)
    if not passed and EXIT_STATUS.search(reason) and (message := last_create_error(workdir)):
        reason += f" ({message})"
    if returncode is None:
        reason = f"timed out after {timeout:.0f} s; " + reason
    left = find_leftovers(name, workdir, token, cgroups_before)
    clean_up(runtime, workdir, left.procs, left.cgroups)
    return Outcome(name, passed, reason, round(seconds, 1), left.found, left.suite_own)


def print_table(outcomes: list[Outcome], width: int) -> None:
    for o in outcomes:
        mark = "pass" if o.passed else "FAIL"
        print(f"{o.name:<{width}}  {mark}  {o.seconds:5.1f}s  {o.reason}"[:240].rstrip(), flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/conformance.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", type=Path, default=MRUNC,
                        help="the runtime to test (default: this checkout's installed mrunc); the floor is "
                             "checked for mrunc only")
    parser.add_argument("--suite", type=Path, default=SUITE, help="the built runtime-tools directory")
    parser.add_argument("--timeout", type=float, default=120, help="seconds each file may take (default 120)")
    parser.add_argument("--results", type=Path, help="write the outcomes here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep each file's TMPDIR, output and runtime calls")
    parser.add_argument("files", nargs="*", help="validation file names (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    runtime = args.runtime.resolve()
    names = args.files or sorted(p.parent.name for p in args.suite.glob("validation/*/*.t"))
    if not names or not (args.suite / "runtimetest").exists():
        print(f"conformance: no built suite in {args.suite} (scripts/conformance-build.sh)", file=sys.stderr)
        return 2
    rundir = Path(tempfile.mkdtemp(prefix="mrunc-conformance."))
    rundir.chmod(0o755)  # containers running as a non-root user read their bundle through it
    print(f"conformance: {len(names)} files against {runtime} (each at most {args.timeout:.0f} s)", flush=True)
    outcomes = []
    for name in names:
        outcomes.append(run_file(name, runtime, args.suite, rundir, args.timeout))
        print_table(outcomes[-1:], max(map(len, names)))
    if args.results:
        args.results.write_text(json.dumps({"runtime": str(runtime), "outcomes": [asdict(o) for o in outcomes]},
                                           indent=1) + "\n")
    if args.keep:
        print(f"conformance: kept each file's output, runtime calls and TMPDIR in {rundir}")
    elif not any(host_mounts(rundir.name)):
        shutil.rmtree(rundir)
    return report(outcomes, runtime == MRUNC.resolve() and not args.files)


def report(outcomes: list[Outcome], check_floor: bool) -> int:
    """Totals and leftovers; 1 below the floor or on a leftover of the runtime's.

    The totals line is never of pytest's 'N passed, N failed' shape: CI's last such line is pytest's."""
    floor = int(FLOOR.read_text().split()[0])
    passed = sum(o.passed for o in outcomes)
    status, verdict = 0, ""
    if check_floor and passed < floor:
        status, verdict = 1, f": BELOW THE FLOOR ({floor}, conformance/floor)"
    print(f"conformance: {passed}/{len(outcomes)} files pass (floor {floor}){verdict}")
    leftovers = [f"{o.name}: {item}" for o in outcomes for item in o.leftovers]
    suite_own = [f"{o.name}: {item}" for o in outcomes for item in o.suite_leftovers]
    if leftovers:
        status = 1
        print(f"conformance: LEFT BEHIND by the runtime (removed since): {len(leftovers)}")
    else:
        print("conformance: the runtime left nothing behind (processes, state dirs, cgroups, mounts)")
    for item in leftovers:
        print(f"  {item}")
    if suite_own:
        print(f"conformance: left by the test programs themselves, when they stopped early (removed): {len(suite_own)}")
    for item in suite_own:
        print(f"  {item}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
