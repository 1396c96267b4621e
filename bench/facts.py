"""What the report records besides timings: host facts and versions, and facts about a compiled plan."""

import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "?"
    except OSError:
        return "not installed"


def host_facts(repo: Path, environment: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": f"Linux {platform.release()} {platform.machine()}",
        "cpu": f"{cpu}, {os.cpu_count()} cores, {int(memory) // 1024} MiB",
        "versions": [f"mrunc {commit}", f"Python {platform.python_version()} ({sys._base_executable})",
                     _first_line(["runc", "--version"]), _first_line(["crun", "--version"]), _first_line(["busybox"])],
        "environment": environment,
        "load_before": loadavg(),
    }


def plan_facts(plan_path: Path, config: dict) -> dict:
    plan = json.loads(plan_path.read_text())
    bpf = sum(len(base64.b64decode(o["args"]["bpf"])) // 8 for o in plan["ops"] if o["op"] == "seccomp_load")
    facts = {"ops": len(plan["ops"]), "bytes": plan_path.stat().st_size, "bpf": bpf}
    if "seccomp" in config.get("linux", {}):
        facts.update(seccomp_phases(config["linux"]["seccomp"]))
    return facts


def seccomp_phases(seccomp: dict) -> dict:
    """In-process ms of compile's seccomp lowering: libseccomp's BPF export, and the rest (rule loop, pfc)."""
    import cProfile
    import pstats

    from mrunc.compiler.lower_seccomp import compile_filter

    profiler = cProfile.Profile()
    profiler.runcall(compile_filter, seccomp)
    by_name: dict[str, float] = {}
    for (_, _, name), (_, _, _, cumulative, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        by_name[name] = by_name.get(name, 0.0) + cumulative
    export = by_name.get("export_bpf", 0.0)
    return {"export_ms": export * 1000, "rules_ms": (by_name.get("compile_filter", 0.0) - export) * 1000}


# Run in a fresh interpreter: each phase of `mrunc compile`, in the order it runs, with the seccomp cache warm
# (the caller's MRUNC_SECCOMP_CACHE); then, once more, what a cold cache adds: pyseccomp and libseccomp.
_COMPILE_PHASES = r"""
import gc, json, sys, time
gc.disable()  # as commands compile (commands/common.py)
marks = [("start", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
from mrunc.compiler import compile as plans, load; mark("import mrunc.compiler")
raw = open(sys.argv[1], "rb").read()
config = load.parse(raw); mark("read and parse the config")
load.validate(config); mark("validate (the generated validator)")
from mrunc.compiler import checks, order, seccomp_cache; from mrunc.executor import plan as _
mark("import the lowering")
seccomp_cache.lookup(config["linux"]["seccomp"]); mark("seccomp cache lookup (key, read, verify)")
plan = plans._lower(config, raw, "/bundle", None, None, None, None, 0, [])
mark("check and lower (seccomp from the cache)")
plans.dumps(plan); mark("serialize the plan")
from mrunc.compiler import lower_seccomp
lower_seccomp._import_pyseccomp(); mark("cold cache only: import pyseccomp")
lower_seccomp.compile_filter(config["linux"]["seccomp"]); mark("cold cache only: seccomp by libseccomp")
print(json.dumps([(name, (t - marks[i][1]) * 1000) for i, (name, t) in enumerate(marks[1:])]))
"""


def compile_phases(python: str, config: Path, runs: int) -> list[tuple[str, float]]:
    """[(phase, median ms)] of compiling `config`, each phase timed in-process in a fresh interpreter."""
    per_phase: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([python, "-c", _COMPILE_PHASES, str(config)], capture_output=True, text=True,
                             check=True).stdout
        for name, ms in json.loads(out):
            per_phase.setdefault(name, []).append(ms)
    return [(name, statistics.median(values)) for name, values in per_phase.items()]
