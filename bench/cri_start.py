"""Pod start time through containerd's CRI, per runtime handler: RunPodSandbox, CreateContainer and
StartContainer as a kubelet sends them (tests/cri.py: containerd 1.6 with the cri plugin in a sandbox of its
own, a busybox image imported as the sandbox image, a CNI bridge), handlers alternated round by round, medians.

Usage (as root): .venv/bin/python bench/cri_start.py [--runs 15] [--warmup 2] [--handlers mrunc runc]
mrunc is the installed command beside this Python (pip's `mrunc`: the lean launcher), as an operator would
name it in BinaryName; runc is the one on PATH.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import workloads  # noqa: E402

from tests.cri import TRAPPING, CriContainerd, Pod, image_archive  # noqa: E402
from tests.engines import Sandbox, remove_cgroups  # noqa: E402

STEPS = ("RunPodSandbox", "CreateContainer", "StartContainer")


def start_pod(cri: CriContainerd, handler: str, parent: str, index: int) -> dict[str, float]:
    """One pod started and timed step by step (ms), then stopped and removed (not timed)."""
    pod = Pod(cri, handler, f"{parent}/{handler}-{index}")
    t0 = time.perf_counter()
    pod.run()
    t1 = time.perf_counter()
    container = pod.create("app", TRAPPING)
    t2 = time.perf_counter()
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container), timeout=60)
    t3 = time.perf_counter()
    times = dict(zip(STEPS, ((t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000), strict=True))
    times["total"] = (t3 - t0) * 1000
    pod.stop_and_remove_pod()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--handlers", nargs="+", default=["mrunc", "runc"])
    args = parser.parse_args()
    mrunc = Path(sys.prefix) / "bin" / "mrunc"
    binaries = {"mrunc": str(mrunc if mrunc.exists() else Path(__file__).resolve().parent.parent / "bin" / "mrunc"),
                "runc": shutil.which("runc") or "runc"}
    work = Path(tempfile.mkdtemp(prefix="mrunc-bench-cri-"))
    os.environ["MRUNC_SECCOMP_CACHE"] = str(work / "seccomp-cache")  # containerd's shims pass it on to mrunc
    parent = f"/mrunc-bench-cri-{os.getpid()}"
    workloads.make_rootfs(work / "rootfs")
    image = image_archive(work / "rootfs", work / "busybox-oci.tar")
    sandbox = Sandbox(work)
    cri = None
    samples: dict[str, list[dict[str, float]]] = {h: [] for h in args.handlers}
    load_before = os.getloadavg()
    try:
        cri = CriContainerd(sandbox, work, {h: binaries[h] for h in args.handlers}, image)
        for index in range(args.warmup + args.runs):
            order = args.handlers if index % 2 == 0 else args.handlers[::-1]  # A B, B A: neither always first
            for handler in order:
                times = start_pod(cri, handler, parent, index)
                if index >= args.warmup:
                    samples[handler].append(times)
    finally:
        if cri:
            cri.stop()
        sandbox.close()
        remove_cgroups(parent)
        shutil.rmtree(work, ignore_errors=True)
    report(samples, binaries, load_before, os.getloadavg())


def report(samples, binaries, load_before, load_after) -> None:
    containerd = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()
    print(f"machine: {os.cpu_count()} CPUs, kernel {os.uname().release}, containerd {containerd[2]}; "
          f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f},"
          f" after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"{len(next(iter(samples.values())))} pods per handler, medians in ms (min-max of total)")
    print(f"| handler | {' | '.join(STEPS)} | pod start (sum) |")
    print("| --- |" + " ---: |" * (len(STEPS) + 1))
    for handler, runs in samples.items():
        medians = [statistics.median(run[step] for run in runs) for step in (*STEPS, "total")]
        totals = [run["total"] for run in runs]
        print(f"| {handler} (`{binaries[handler]}`) | " + " | ".join(f"{m:.0f}" for m in medians[:-1])
              + f" | {medians[-1]:.0f} ({min(totals):.0f}-{max(totals):.0f}) |")


if __name__ == "__main__":
    main()
