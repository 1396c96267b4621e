"""docs/benchmarks.md: host facts, the start-up tables, paired ratios against the targets, growth, profile."""

import statistics
from dataclasses import dataclass, field

from exec_trace import STARTUP
from lifecycle import CALLS, SEQUENCE, Lifecycle, sequence_ms
from measure import Sample, paired_ratios, quantiles

EXEC = "mrunc exec PLAN"
TARGETS = (("runc run", 0.8), ("crun run", 1.3))
COMPILE_TARGETS_MS = {"warm": 30, "cold": 60}  # issue 13: podman's config, by the state of the seccomp cache


@dataclass
class Workload:
    name: str
    samples: dict[str, list[Sample]]
    rss_kb: dict[str, list[int]]
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class GrowthRow:
    size: int
    compile: list[Sample]
    exec: list[Sample]
    facts: dict


@dataclass
class PodmanCompile:
    samples: list[Sample]  # seccomp cache warm
    cold: list[Sample]  # MRUNC_SECCOMP_CACHE=off: libseccomp compiles the filter, as on a cache's first use
    phases: list[tuple[str, float]]  # (phase, median ms in-process), facts.compile_phases


@dataclass
class PodmanRun:
    samples: dict[str, list[Sample]]  # runtime -> `podman run --rm` samples
    skipped: dict[str, str]  # runtime (or "all") -> why it did not run


@dataclass
class Profile:
    import_total_ms: float
    imports: list[tuple[str, float]]
    steps: list[tuple[str, int, float]]
    traces: int


def _ms(values: list[float]) -> str:
    low, median, high = quantiles(values)
    return f"{median:.1f} | {low:.1f}–{high:.1f}"


def _startup_table(w: Workload) -> list[str]:
    lines = ["| contender | wall ms (median) | wall p10–p90 | CPU ms (user+sys) | peak RSS MiB |",
             "|---|---:|---:|---:|---:|"]
    for name, samples in w.samples.items():
        cpu = statistics.median(s.cpu_ms for s in samples)
        rss = statistics.median(w.rss_kb[name]) / 1024
        lines.append(f"| `{name}` | {_ms([s.wall_ms for s in samples])} | {cpu:.1f} | {rss:.1f} |")
    for name, why in w.skipped.items():
        lines.append(f"| `{name}` | skipped: {why[:120]} | | | |")
    return lines


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def _targets(workloads: list[Workload]) -> list[str]:
    lines = ["| workload | ratio (paired, median) | p10–p90 | target | verdict |", "|---|---|---:|---:|---|"]
    for w in workloads:
        for other, target in TARGETS:
            if EXEC not in w.samples or other not in w.samples:
                lines.append(f"| {w.name} | `{EXEC}` / `{other}` | not measured | ≤ {target} | — |")
                continue
            low, median, high = quantiles(paired_ratios(w.samples[EXEC], w.samples[other]))
            miss = "" if median <= target else f" by {(median / target - 1) * 100:.0f}%"
            lines.append(f"| {w.name} | `{EXEC}` / `{other}` = {median:.2f} | {low:.2f}–{high:.2f} | ≤ {target} | "
                         f"{_verdict(median <= target)}{miss} |")
        if EXEC in w.samples and "runc run" in w.samples:
            ours = statistics.median(w.rss_kb[EXEC])
            runc = statistics.median(w.rss_kb["runc run"])
            lines.append(f"| {w.name} | peak RSS `{EXEC}` {ours / 1024:.1f} MiB vs `runc run` {runc / 1024:.1f} MiB"
                         f" | | ≤ 1.0 | {_verdict(ours <= runc)} |")
    return lines


def _growth(kind: str, rows: list[GrowthRow]) -> list[str]:
    extra = " | in compile: libseccomp BPF export ms | rest of the seccomp step ms" if kind == "rules" else ""
    lines = [f"| {kind} | compile ms | exec ms | plan ops | plan KiB | BPF instructions{extra} |",
             "|---:" * (6 + 2 * bool(extra)) + "|"]
    for r in rows:
        phases = f" | {r.facts['export_ms']:.1f} | {r.facts['rules_ms']:.1f}" if extra else ""
        lines.append(f"| {r.size} | {_median(r.compile):.1f} | {_median(r.exec):.1f} | {r.facts['ops']} | "
                     f"{r.facts['bytes'] / 1024:.0f} | {r.facts['bpf']}{phases} |")
    lines += ["", f"Marginal cost of one more {kind[:-1]}: difference of medians over difference of sizes, ± what the "
              "p10–p90 spreads of the two sizes allow:", ""]
    for step in ("compile", "exec"):
        pairs = zip(rows, rows[1:], strict=False)
        slopes = [_slope(a.size, getattr(a, step), b.size, getattr(b, step)) for a, b in pairs]
        text = ", ".join(f"{a}→{b}: {slope * 1000:.0f} ± {err * 1000:.0f} µs" for a, b, slope, err in slopes)
        lines.append(f"- {step}: {text} — {_linearity(slopes)}")
    return lines


def _median(samples: list[Sample]) -> float:
    return statistics.median(s.wall_ms for s in samples)


def _slope(a: int, at: list[Sample], b: int, bt: list[Sample]) -> tuple[int, int, float, float]:
    """(a, b, ms per item, its uncertainty from the two sizes' p10–p90 half-spreads)."""
    spread = sum((q[2] - q[0]) / 2 for q in (quantiles([s.wall_ms for s in at]), quantiles([s.wall_ms for s in bt])))
    return a, b, (_median(bt) - _median(at)) / (b - a), spread / (b - a)


def _linearity(slopes: list[tuple[int, int, float, float]]) -> str:
    if len(slopes) < 2:
        return "two sizes: no verdict"
    (*_, s1, e1), (*_, s2, e2) = slopes[-2:]
    if abs(s2 - s1) <= e1 + e2:
        return "linear within the noise (the two marginal costs differ by less than their uncertainties)"
    return "linear" if s1 > 0 and s2 > 0 and max(s1, s2) / min(s1, s2) <= 1.5 else "**not linear**"


def _profile(p: Profile) -> list[str]:
    lines = [f"Imports of `{EXEC}`: {p.import_total_ms:.1f} ms in all (`python -X importtime`, one run); "
             "slowest (self time):", "", "| module | ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in p.imports[:12]]
    lines += ["", f"Wall-clock trace of `mrunc exec --trace PLAN` (plain workload), median of {p.traces} runs; ops "
              "of one kind added up; each op's time runs until the next op starts, in whichever process:", "",
              "| step | count | ms |", "|---|---:|---:|"]
    lines += [f"| {label} | {count} | {ms:.1f} |" for label, count, ms in p.steps[:14]]
    return lines


FLOOR = "python -I -S -c pass (floor)"


def _podman(podman: PodmanCompile, python_ms: float) -> list[str]:
    walls = [s.wall_ms for s in podman.samples]
    lines = ["`mrunc compile` of podman's config (podman-run-netns.json), the installed command, alternated:", "",
             "| seccomp cache | wall ms (median, p10–p90) | CPU ms | target | verdict |", "|---|---:|---:|---:|---|"]
    for state, samples in (("warm", podman.samples), ("cold (`MRUNC_SECCOMP_CACHE=off`)", podman.cold)):
        target = COMPILE_TARGETS_MS[state.split()[0]]
        median = statistics.median(s.wall_ms for s in samples)
        miss = "" if median <= target else f" by {median - target:.0f} ms"
        lines.append(f"| {state} | {_ms([s.wall_ms for s in samples]).replace(' | ', ' (')}) | "
                     f"{statistics.median(s.cpu_ms for s in samples):.1f} | ≤ {target} | "
                     f"{_verdict(median <= target)}{miss} |")
    lines += ["", f"Where it goes, each phase timed in-process in a fresh interpreter (median of {len(walls)} runs), "
              f"after the interpreter's own start ({python_ms:.1f} ms, `python -I -S -c pass`):",
              "", "| phase | ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in podman.phases]
    cold = sum(ms for name, ms in podman.phases if name.startswith("cold cache only"))
    lines += ["", "jsonschema is imported only to explain a refusal: the generated validator (schemas/valid_config.py) "
              "answers for a valid config. The seccomp filter comes from the cache (compiler/seccomp_cache.py); a "
              f"cold cache adds pyseccomp's import and libseccomp's compile, {cold:.1f} ms here.", ""]
    return lines


def _floor(workloads: list[Workload], p: Profile) -> list[str]:
    """Why the targets can or cannot be met: the part of mrunc's time no change to mrunc can remove."""
    plain = workloads[0].samples
    if EXEC not in plain or FLOOR not in plain:
        return []
    step = {label: ms for label, _, ms in p.steps}
    python = statistics.median(s.wall_ms for s in plain[FLOOR])
    startup = step.get(STARTUP, 0.0)
    ops = sum(ms for label, _, ms in p.steps) - startup
    lines = [f"- Interpreter: `python -I -S -c pass` takes {python:.1f} ms (median, plain rounds) before mrunc runs "
             "a line of its own.",
             f"- Start-up in the trace (spawn, interpreter, imports, plan load and check): {startup:.1f} ms; the "
             "imports of `mrunc exec` are the standard library only (libc through `_ctypes` alone, not the ctypes "
             "package).",
             f"- The ops, from the first until mrunc exits (forks, namespaces, mounts, execve and busybox's own run): "
             f"{ops:.1f} ms in the trace, which prints a line per op.",
             f"- Joining the v1 cgroups: init's `cgroup_join_self` takes {step.get('[init] cgroup_join_self', 0.0):.1f}"
             " ms. A thread that moves itself through a v1 `tasks` file takes no threadgroup lock; a `cgroup.procs` "
             "write takes it, and the first one after an idle pause waits for an RCU grace period: runc and crun "
             "wait 7–9 ms at their first `cgroup.procs` write on this host (strace)."]
    for other, target in TARGETS:
        if other in plain:
            theirs = statistics.median(s.wall_ms for s in plain[other])
            lines.append(f"- Plain workload: {target} × `{other}` = {target * theirs:.1f} ms, while the interpreter "
                         f"alone takes {python:.1f} ms and mrunc's start-up {startup:.1f} ms.")
    return lines


RUN_TARGET = 1.2  # create+start+delete and run, against runc
PODMAN_RUN_TARGET = 1.1
CALL_TARGET_MS = 3.0  # state, list, kill, delete: at most this much over `python -I -S -c pass`


def _paired(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    return quantiles([a / b for a, b in zip(ours, theirs, strict=True)])


def _ratio_row(what: str, ours: list[float], theirs: list[float], target: float) -> str:
    low, median, high = _paired(ours, theirs)
    miss = "" if median <= target else f" by {(median / target - 1) * 100:.0f}%"
    return f"| {what} | {median:.2f} | {low:.2f}–{high:.2f} | ≤ {target} | {_verdict(median <= target)}{miss} |"


def _engines(e: Lifecycle) -> list[str]:
    names = list(e.steps)
    lines = ["| step | " + " | ".join(f"{n} ms (median, p10–p90)" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    rows = [(f"`{'delete --force' if step == 'delete' else step}`", {n: [s.wall_ms for s in e.steps[n][step]]
                                                                        for n in names}) for step in SEQUENCE]
    rows.append(("create + start + delete", {n: sequence_ms(e.steps[n]) for n in names}))
    rows += [(f"`{step}` (a created container)", {n: [s.wall_ms for s in e.steps[n][step]] for n in names})
             for step in CALLS]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(_ms(values[n]).replace(" | ", " (") + ")" for n in names) + " |")
    floor = [s.wall_ms for s in e.floor]
    lines.append(f"| `python -I -S -c pass` (floor, alternated with the calls) | {_ms(floor).replace(' | ', ' (')}) |"
                 + " |" * (len(names) - 1))
    lines.append("| peak RSS of create, MiB (its largest process) | " +
                 " | ".join(f"{statistics.median(e.rss_kb[n]) / 1024:.1f}" for n in names) + " |")
    return lines


def _engine_targets(e: Lifecycle | None, workloads: list[Workload], podman: "PodmanRun | None") -> list[str]:
    lines = ["| what | paired ratio (median) | p10–p90 | target | verdict |", "|---|---:|---:|---:|---|"]
    if podman and "mrunc" in podman.samples and "runc" in podman.samples:
        lines.append(_ratio_row("`podman run --rm` with mrunc / with runc",
                                [s.wall_ms for s in podman.samples["mrunc"]],
                                [s.wall_ms for s in podman.samples["runc"]], PODMAN_RUN_TARGET))
    if e and "mrunc" in e.steps and "runc" in e.steps:
        lines.append(_ratio_row("create + start + delete, mrunc / runc", sequence_ms(e.steps["mrunc"]),
                                sequence_ms(e.steps["runc"]), RUN_TARGET))
    for w in workloads:
        if "mrunc run" in w.samples and "runc run" in w.samples:
            lines.append(_ratio_row(f"`run` ({w.name}), mrunc / runc", [s.wall_ms for s in w.samples["mrunc run"]],
                                    [s.wall_ms for s in w.samples["runc run"]], RUN_TARGET))
    lines += ["", "The floors these ratios meet:", ""] + _run_floors(e, workloads)
    lines += ["", "Each call against the interpreter's start in the same round (wall; CPU, user+sys, is steadier on a "
              "busy machine):", "",
              "| what | mrunc over the floor, wall ms (paired, median) | p10–p90 | CPU ms over | target | verdict |",
              "|---|---:|---:|---:|---:|---|"]
    if e and "mrunc" in e.steps:
        for step in ("state", "list", "kill 0", "delete"):
            pairs = list(zip(e.steps["mrunc"][step], e.floor, strict=True))
            low, median, high = quantiles([s.wall_ms - f.wall_ms for s, f in pairs])
            cpu = statistics.median(s.cpu_ms - f.cpu_ms for s, f in pairs)
            label = "delete --force" if step == "delete" else step
            lines.append(f"| `{label}` − `python -I -S -c pass` | {median:.1f} | {low:.1f}–{high:.1f} | {cpu:.1f} | "
                         f"≤ {CALL_TARGET_MS:.0f} | {_verdict(median <= CALL_TARGET_MS)} |")
    lines += ["", "| peak RSS (largest process of a run) | mrunc MiB | runc MiB | target | verdict |",
              "|---|---:|---:|---:|---|"]
    pairs = [(f"`exec PLAN` / `run` ({w.name})", w.rss_kb.get("mrunc exec PLAN"), w.rss_kb.get("runc run"))
             for w in workloads]
    pairs += [(f"`run` ({w.name})", w.rss_kb.get("mrunc run"), w.rss_kb.get("runc run")) for w in workloads]
    if e and "mrunc" in e.rss_kb and "runc" in e.rss_kb:
        pairs.append(("`create`", e.rss_kb["mrunc"], e.rss_kb["runc"]))
    for what, ours, theirs in pairs:
        if ours and theirs:
            a, b = statistics.median(ours) / 1024, statistics.median(theirs) / 1024
            lines.append(f"| {what} | {a:.1f} | {b:.1f} | ≤ runc | {_verdict(a <= b)} |")
    return lines


def _run_floors(e: Lifecycle | None, workloads: list[Workload]) -> list[str]:
    """What no change to mrunc's own code removes: its interpreter's start, once per process."""
    lines = []
    if e and "mrunc" in e.steps and "runc" in e.steps:
        floor = statistics.median(s.wall_ms for s in e.floor)
        runc = statistics.median(sequence_ms(e.steps["runc"]))
        lines.append(f"- create + start + delete is three mrunc processes: three interpreter starts alone take "
                     f"{3 * floor:.1f} ms (3 × `python -I -S -c pass`), against {RUN_TARGET} × runc's whole sequence = "
                     f"{RUN_TARGET * runc:.1f} ms.")
    for w in workloads:
        if all(name in w.samples for name in ("mrunc run", "runc run", "mrunc compile", FLOOR)):
            run, runc = (statistics.median(s.wall_ms for s in w.samples[n]) for n in ("mrunc run", "runc run"))
            compile_ms = statistics.median(s.wall_ms for s in w.samples["mrunc compile"])
            floor = statistics.median(s.wall_ms for s in w.samples[FLOOR])
            lines.append(f"- `run` ({w.name}): {run:.1f} ms, of which compiling the config is most (`mrunc compile` "
                         f"of it alone: {compile_ms:.1f} ms, the interpreter's start {floor:.1f} ms of that); "
                         f"{RUN_TARGET} × runc's run = {RUN_TARGET * runc:.1f} ms.")
    return lines


def _podman_run(p: PodmanRun) -> list[str]:
    lines = ["| runtime | wall ms (median) | wall p10–p90 | CPU ms (podman's tree) |", "|---|---:|---:|---:|"]
    for name, samples in p.samples.items():
        lines.append(f"| {name} | {_ms([s.wall_ms for s in samples])} | "
                     f"{statistics.median(s.cpu_ms for s in samples):.1f} |")
    lines += [f"| {name} | skipped: {why[:300]} | | |" for name, why in p.skipped.items()]
    return lines


def render(host: dict, args, workloads: list[Workload], mounts: list[GrowthRow], rules: list[GrowthRow],
           podman: PodmanCompile | None, profile: Profile, engines: Lifecycle | None = None,
           podman_runs: PodmanRun | None = None) -> str:
    out = ["# Benchmarks", "",
           "Generated by `scripts/bench.sh` (as root) (bench/run.py); do not edit by hand.", "",
           "## Host", "",
           f"- Date: {host['date']}",
           f"- {host['kernel']}; {host['cpu']}",
           f"- Versions: {'; '.join(host['versions'])}",
           f"- Load average (1/5/15 min) before: {host['load_before']}; after: {host['load_after']}",
           f"- Environment: every contender ran inside one private mount namespace (`unshare -m --propagation "
           f"private`); {host['environment']}, because crun 1.8.1 refuses hybrid cgroups. All contenders run the "
           "same config.json and so do the same cgroup work (cgroupfs, v1 controllers).",
           f"- Method: {args.runs} rounds after {args.warmup} warm-up rounds; each round runs every contender once, "
           "starting one further along each round (A B C, B C A, ...). Wall time by `time.perf_counter` around "
           "`posix_spawn` + `wait4`; CPU (user+sys) from `wait4`, which covers the contender's whole tree (all are "
           "child subreapers that reap the container). Peak RSS: the largest single process of a run, from "
           f"{args.rss_runs} more runs each under GNU `time -f %M` (whose own ~1 MiB is the floor).",
           "- mrunc runs as users and engines run it: the `mrunc` command pip installed (bin/mrunc, which starts "
           "the virtualenv's interpreter with `-I -S`: no site, no environment), in the virtualenv scripts/setup.sh "
           "builds on Debian's python3 where there is one.",
           f"- Cgroups: all use cgroupfs with the config's `cgroupsPath`, `/{args.cgroup_parent}/WORKLOAD`; "
           "mrunc joins the 8 v1 controllers it manages, runc and crun also the `name=systemd` hierarchy "
           "(crun also writes under the unmounted "
           "cgroup2 directory, which the benchmark removes).",
           "- Noise: the machine is shared with other developers' test runs; the p10–p90 spread shows how "
           "noisy each contender was. Paired ratios compare neighbours in the same round.", ""]
    for w in workloads:
        out += [f"## Start-up: busybox `/bin/true`, {w.name} config", ""] + _startup_table(w) + [""]
    out += ["## Targets", ""] + _targets(workloads) + [""]
    if engines or podman_runs:
        out += ["## What engines call", "",
                "Each a process of its own, as podman, containerd and Kubernetes start them; every runtime "
                "through its installed command, alternated round by round. The sequence: create, start and "
                "`delete --force` of one container (plain config, `/bin/true`); then `state`, `list` and `kill ID 0` "
                "(a liveness check that changes nothing) on a created container of each runtime, alternated with "
                "the interpreter's own start. The benchmark is the containers' reaper (a child subreaper with a "
                "thread that reaps them), as conmon and containerd's shim are.", ""]
        if engines:
            out += _engines(engines) + [""]
        if podman_runs:
            out += ["`podman run --rm IMAGE true` (podman and conmon in a sandbox of their own mount and network "
                    "namespaces, as tests/engines.py sets them up; busybox image, default bridge network):", ""]
            out += _podman_run(podman_runs) + [""]
        out += ["### Targets of issue 13", ""] + _engine_targets(engines, workloads, podman_runs) + [""]
    if podman:
        python = statistics.median(s.wall_ms for s in workloads[0].samples.get(FLOOR, [Sample(0.0, 0.0)]))
        out += _podman(podman, python)
    out += ["## The floor", ""] + _floor(workloads, profile) + [""]
    out += ["## How cost grows", "",
            "Totals include a fixed start-up (interpreter and imports; for compile also jsonschema and pyseccomp), "
            "so they are not proportional to size; the marginal cost of one more item is what should stay constant.",
            "",
            "tmpfs mounts added to the plain config:", ""] + _growth("mounts", mounts)
    out += ["", "seccomp rules (one argument condition each, default allow):", ""] + _growth("rules", rules)
    out += ["", "Where compile's seccomp step goes: libseccomp's BPF export (`seccomp_export_bpf`) grows faster than "
            "the rule count, the rest of the step (our rule loop, the pfc text) in step with it; see the two "
            "in-process columns. exec only hands the finished BPF to the kernel."]
    out += ["", "## Profile of `mrunc exec`", ""] + _profile(profile) + [""]
    return "\n".join(out)
