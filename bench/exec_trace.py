"""Where `mrunc exec` spends its time: the import list (-X importtime) and a wall-clock trace of the op loop."""

import statistics
import subprocess
import time


def import_times(launcher: list[str], args: list[str]) -> list[tuple[str, float, float]]:
    """[(module, self ms, cumulative ms)] for one `mrunc ARGS` under `python -X importtime`."""
    command = [launcher[0], "-X", "importtime", *launcher[1:], *args]
    stderr = subprocess.run(command, capture_output=True, text=True, check=True).stderr
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, cumulative_us, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append((name, int(self_us) / 1000, int(cumulative_us) / 1000))
    return rows


STARTUP = "start-up: interpreter, imports, plan load and check"


def op_trace(launcher: list[str], plan: str) -> list[tuple[str, float]]:
    """[(step, ms)]: `mrunc exec --trace` prints each op as it starts; the gap to the next line is its cost.
    The first step is start-up (interpreter, imports, plan check); the last is execve until mrunc exits."""
    start = time.perf_counter()
    process = subprocess.Popen([*launcher, "exec", "--trace", plan], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stamps = []
    assert process.stderr
    for line in process.stderr:
        stamps.append((time.perf_counter(), line))
    process.wait()
    end = time.perf_counter()
    steps = [(STARTUP, (stamps[0][0] - start) * 1000)]
    for (t, line), (t_next, _) in zip(stamps, stamps[1:] + [(end, "")], strict=True):
        steps.append((_op_label(line), (t_next - t) * 1000))
    return steps


def _op_label(line: str) -> str:
    """'mrunc: op 3/92 [init] mount source=...' -> '[init] mount'."""
    words = line.split()
    return " ".join(words[3:5]) if len(words) >= 5 and words[1] == "op" else line.strip()[:40]


def by_step(traces: list[list[tuple[str, float]]]) -> list[tuple[str, int, float]]:
    """[(step, count, ms)] slowest first: ops of one kind added up within a run, then the median over runs."""
    per_run: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for steps in traces:
        totals: dict[str, float] = {}
        for label, ms in steps:
            totals[label] = totals.get(label, 0.0) + ms
        for label, ms in totals.items():
            per_run.setdefault(label, []).append(ms)
        counts = {label: sum(1 for step, _ in steps if step == label) for label in totals}
    rows = [(label, counts.get(label, 0), statistics.median(v)) for label, v in per_run.items()]
    return sorted(rows, key=lambda row: -row[2])

