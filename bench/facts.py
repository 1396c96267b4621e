"""What the report records besides timings: host facts and versions, and facts about a compiled plan."""

import base64
import json
import os
import platform
import subprocess
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
        "versions": [f"mrunc {commit}", f"Python {platform.python_version()}", _first_line(["runc", "--version"]),
                     _first_line(["crun", "--version"]), _first_line(["busybox"])],
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
