"""Timing with Python's own clocks: one process per run (posix_spawn + wait4), contenders alternated A B A B.

wait4 gives the run's CPU time (user + sys); each contender reaps its whole tree (runc, crun and mrunc are
child subreapers and wait for the container), so it covers every process of the run. Peak RSS comes from
separate runs under GNU time: a process spawned from this one would report our own RSS as its peak
(exec records the old address space's high-water mark, and a vfork child's old one is ours).
"""

import ctypes
import os
import statistics
import threading
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
_waited: set[int] = set()  # the pids run_once waits for itself
_lock = threading.Lock()


class Reaping:
    """`with Reaping():` be the containers' reaper, as conmon and containerd's shim are. A container that create
    left behind becomes this process's child once its runtime exits, and a thread reaps it as soon as it exits:
    delete waits until a finished or killed container has left its cgroups, which a zombie has not. Only around
    run_once: a subprocess.run of ours would lose its exit status to the thread."""

    def __enter__(self) -> "Reaping":
        self._subreaper(1)
        self.running = True
        self.thread = threading.Thread(target=self._reap, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.running = False
        self.thread.join()
        self._subreaper(0)

    @staticmethod
    def _subreaper(on: int) -> None:
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, on, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")

    def _reap(self) -> None:
        while self.running:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            with _lock:
                if info is not None and info.si_pid not in _waited:
                    os.waitpid(info.si_pid, 0)
                    continue
            time.sleep(0.0005)


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float


class RunFailed(Exception):
    pass


def run_once(argv: list[str], log_path: str) -> Sample:
    """Run argv with stdin and stdout on /dev/null and stderr to log_path; raise RunFailed on a non-zero exit."""
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, log, 2)]
    try:
        start = time.perf_counter_ns()
        with _lock:  # the reaper leaves it to us
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
            _waited.add(pid)
        try:
            _, status, usage = os.wait4(pid, 0)
        finally:
            _waited.discard(pid)
        wall = time.perf_counter_ns() - start
    finally:
        os.close(null)
        os.close(log)
    if os.waitstatus_to_exitcode(status) != 0:
        with open(log_path) as f:
            raise RunFailed(f"{' '.join(argv)}: exit {os.waitstatus_to_exitcode(status)}: {f.read().strip()[-400:]}")
    return Sample(wall / 1e6, (usage.ru_utime + usage.ru_stime) * 1e3)


def alternate(contenders: dict[str, list[str]], runs: int, warmup: int, log_dir: str) -> dict[str, list[Sample]]:
    """Round r runs every contender once, starting one further along each round, so none always follows
    the same neighbour; warm-up rounds are run and dropped."""
    names = list(contenders)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for r in range(warmup + runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sample = run_once(contenders[name], os.path.join(log_dir, f"{_slug(name)}.log"))
            if r >= warmup:
                samples[name].append(sample)
    return samples


def peak_rss_kb(contenders: dict[str, list[str]], runs: int, log_dir: str) -> dict[str, list[int]]:
    """Peak RSS of the largest process of each run, by `/usr/bin/time -f %M` (its own ~1 MiB is the floor)."""
    peaks: dict[str, list[int]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, argv in contenders.items():
            out = os.path.join(log_dir, f"{_slug(name)}.rss")
            run_once(["/usr/bin/time", "-f", "%M", "-o", out, *argv], os.path.join(log_dir, f"{_slug(name)}.log"))
            with open(out) as f:
                peaks[name].append(int(f.read().split()[-1]))
    return peaks


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(p10, median, p90); with fewer than 3 values, (min, median, max)."""
    ordered = sorted(values)
    if len(ordered) < 3:
        return ordered[0], statistics.median(ordered), ordered[-1]
    deciles = statistics.quantiles(ordered, n=10)
    return deciles[0], statistics.median(ordered), deciles[-1]


def paired_ratios(a: list[Sample], b: list[Sample]) -> list[float]:
    """Wall time of a over b, run by run: a's run r and b's run r were neighbours in the same round."""
    return [x.wall_ms / y.wall_ms for x, y in zip(a, b, strict=True)]
