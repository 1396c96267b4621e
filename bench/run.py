"""mrunc's start-up benchmark: `mrunc exec PLAN`, `mrunc run`, `runc run` and `crun run` side by side.

Usage (as root): scripts/bench.sh [--runs N] [--output FILE]   (writes docs/benchmarks.md by default)

Every contender runs in one private mount namespace in which /sys/fs/cgroup/unified is unmounted: crun 1.8.1
refuses this host's hybrid layout otherwise, and all contenders share the environment so the comparison is
fair. The host's own mounts are not touched.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import exec_trace  # noqa: E402
import facts  # noqa: E402
import lifecycle  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
import workloads  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IN_NAMESPACE = "MRUNC_BENCH_IN_NAMESPACE"
UNIFIED = "/sys/fs/cgroup/unified"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="measured rounds per workload (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="rounds run first and dropped (default 3)")
    parser.add_argument("--rss-runs", type=int, default=5, help="runs under GNU time for peak RSS (default 5)")
    parser.add_argument("--growth-runs", type=int, default=9, help="rounds per size in the growth tables")
    parser.add_argument("--lifecycle-runs", type=int, help="rounds of create/start/delete and of state/list/kill "
                        "(default: --runs)")
    parser.add_argument("--podman-runs", type=int, default=10,
                        help="rounds of `podman run --rm` through each runtime (default 10; 0: leave it out)")
    parser.add_argument("--mounts", default="10,100,1000", help="mount counts for the growth table")
    parser.add_argument("--rules", default="10,100,400", help="seccomp rule counts for the growth table")
    parser.add_argument("--output", default=str(REPO / "docs" / "benchmarks.md"))
    parser.add_argument("--cgroup-parent", default=f"mrunc-bench-{os.getpid()}",
                        help="cgroup under each controller for the containers (default: mrunc-bench-PID)")
    parser.add_argument("--workdir", help="scratch directory (default: a new one under $TMPDIR, removed after)")
    return parser.parse_args(argv)


def enter_namespace(argv: list[str]) -> None:
    """Re-run this script inside `unshare -m --propagation private`, once."""
    if os.environ.get(IN_NAMESPACE) != "1":
        os.environ[IN_NAMESPACE] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable, __file__, *argv])


def unmount_unified() -> str:
    if not os.path.ismount(UNIFIED):
        return f"{UNIFIED} was not mounted"
    subprocess.run(["umount", UNIFIED], check=True)
    return f"{UNIFIED} unmounted in the benchmark's private mount namespace (the host keeps it)"


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.launcher = [sys.executable, "-I", "-S", str(REPO / "bin" / "mrunc")]  # for the profile (-X importtime)
        # What users and engines run: the command pip installed beside this interpreter (scripts/setup.sh).
        self.installed = [str(Path(sys.executable).with_name("mrunc"))]
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.rootfs = work / "rootfs"
        workloads.make_rootfs(self.rootfs)
        self.spec = workloads.runc_spec(work / "spec")

    def bundle(self, name: str, config: dict) -> tuple[Path, Path]:
        """(bundle dir, plan compiled from it)."""
        bundle = workloads.write_bundle(self.work / "bundles", self.rootfs, name, config)
        plan = bundle / "plan.json"
        measure.run_once([*self.launcher, "compile", str(bundle / "config.json"), "-o", str(plan)],
                         str(self.logs / "compile.log"))
        return bundle, plan

    def contenders(self, name: str, bundle: Path, plan: Path) -> dict[str, list[str]]:
        state = self.work / "state"
        return {
            "mrunc exec PLAN": [*self.installed, "exec", str(plan)],
            "mrunc run": [*self.installed, "--root", str(state / "mrunc"), "run", "--bundle", str(bundle), name],
            "mrunc compile": [*self.installed, "compile", str(bundle / "config.json"), "-o", str(bundle / "p3.json")],
            "runc run": ["runc", "--root", str(state / "runc"), "run", "--bundle", str(bundle), name],
            "crun run": ["crun", "--root", str(state / "crun"), "run", "--bundle", str(bundle), name],
            "python -I -S -c pass (floor)": [sys.executable, "-I", "-S", "-c", "pass"],
        }

    def startup(self, name: str, config: dict) -> report.Workload:
        bundle, plan = self.bundle(name, config)
        contenders, skipped = {}, {}
        for label, argv in self.contenders(name, bundle, plan).items():
            if not shutil.which(argv[0]):
                skipped[label] = f"{argv[0]} is not installed"
                continue
            try:
                measure.run_once(argv, str(self.logs / "probe.log"))
                contenders[label] = argv
            except measure.RunFailed as e:
                if label.startswith("mrunc"):
                    raise
                skipped[label] = str(e)
        samples = measure.alternate(contenders, self.args.runs, self.args.warmup, str(self.logs))
        rss = measure.peak_rss_kb(contenders, self.args.rss_runs, str(self.logs))
        return report.Workload(name, samples, rss, skipped)

    def growth(self, kind: str, sizes: list[int]) -> list[report.GrowthRow]:
        rows = []
        for size in sizes:
            make = workloads.with_mounts if kind == "mounts" else workloads.with_seccomp_rules
            name = f"{kind}-{size}"
            config = make(self.spec, name, size)
            bundle, plan = self.bundle(name, config)
            contenders = {
                "compile": [*self.launcher, "compile", str(bundle / "config.json"), "-o", str(bundle / "p2.json")],
                "exec": [*self.launcher, "exec", str(plan)],
            }
            samples = measure.alternate(contenders, self.args.growth_runs, 1, str(self.logs))
            rows.append(report.GrowthRow(size, samples["compile"], samples["exec"], facts.plan_facts(plan, config)))
        return rows

    def lifecycle(self) -> lifecycle.Lifecycle:
        runtimes = {"mrunc": self.installed, "runc": ["runc"], "crun": ["crun"]}
        runtimes = {name: argv for name, argv in runtimes.items() if shutil.which(argv[0])}
        bundles = {name: {role: str(workloads.write_bundle(self.work / "bundles", self.rootfs, f"lc-{name}-{role}",
                                                           workloads.plain(self.spec, f"lc-{name}-{role}")))
                          for role in ("held", "life")} for name in runtimes}
        runs = self.args.lifecycle_runs if self.args.lifecycle_runs is not None else self.args.runs
        with measure.Reaping():  # the created containers' reaper, as conmon is
            return lifecycle.measure_lifecycle(runtimes, str(self.work / "state"), bundles,
                                               [sys.executable, "-I", "-S", "-c", "pass"], runs, self.args.warmup,
                                               self.args.rss_runs, str(self.logs))

    def podman(self) -> report.PodmanRun | None:
        if not self.args.podman_runs:
            return None
        if not shutil.which("podman"):
            return report.PodmanRun({}, {"all": "podman is not installed"})
        import podman_run

        runtimes = {"mrunc": self.installed[0], "runc": shutil.which("runc") or "runc",
                    "crun": shutil.which("crun") or "crun"}
        try:
            bench = podman_run.PodmanBench(self.work / "podman", self.rootfs, runtimes,
                                           f"/{workloads.CGROUP_PARENT}/podman")
        except measure.RunFailed as e:
            return report.PodmanRun({}, {"all": str(e)})
        try:
            samples, skipped = bench.measure(list(runtimes), self.args.podman_runs, 1, str(self.logs))
        finally:
            bench.close()
        return report.PodmanRun(samples, skipped)

    def podman_compile(self) -> report.PodmanCompile | None:
        podman_config = workloads.REFERENCE / "configs" / "podman-run-netns.json"
        if not podman_config.exists():
            return None
        args = ["compile", str(podman_config), "-o", str(self.work / "podman-plan.json")]
        cache = self.work / "seccomp-cache"  # root's, 0700: one the cache trusts (compiler/seccomp_cache.py)
        contenders = {"warm": ["env", f"MRUNC_SECCOMP_CACHE={cache}", *self.installed, *args],
                      "cold": ["env", "MRUNC_SECCOMP_CACHE=off", *self.installed, *args]}
        samples = measure.alternate(contenders, self.args.growth_runs, 1, str(self.logs))  # warm-up fills it
        os.environ["MRUNC_SECCOMP_CACHE"] = str(cache)  # the phases: warm, then what a cold cache adds
        try:
            phases = facts.compile_phases(sys.executable, podman_config, self.args.growth_runs)
        finally:
            del os.environ["MRUNC_SECCOMP_CACHE"]
        return report.PodmanCompile(samples["warm"], samples["cold"], phases)

    def profile(self, plan: Path) -> report.Profile:
        imports = [(name, own) for name, own, _ in exec_trace.import_times(self.launcher, ["exec", str(plan)])]
        total, imports = sum(ms for _, ms in imports), sorted(imports, key=lambda row: -row[1])
        traces = [exec_trace.op_trace(self.launcher, str(plan)) for _ in range(max(3, self.args.growth_runs))]
        return report.Profile(total, imports, exec_trace.by_step(traces), len(traces))


def remove_cgroups() -> None:
    """The benchmark's cgroups, deepest first (podman nests them); and what crun wrote under the unmounted
    /sys/fs/cgroup/unified: plain files on the host's /sys/fs/cgroup tmpfs, which would stay there hidden under
    the host's cgroup2 mount."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{workloads.CGROUP_PARENT}"):
        if str(parent.parent) == UNIFIED and not os.path.ismount(UNIFIED):
            shutil.rmtree(parent)
            continue
        for child in sorted((d for d in parent.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            child.rmdir()
        parent.rmdir()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (it creates real containers)", file=sys.stderr)
        return 2
    enter_namespace(argv)
    workloads.CGROUP_PARENT = args.cgroup_parent
    environment = unmount_unified()
    # Compiled bytecode for every contender (this shell may set PYTHONDONTWRITEBYTECODE), and the checkout
    # on the path of the `python -m mrunc` contender.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "mrunc")], check=True,
                   stdout=subprocess.DEVNULL)
    os.environ["PYTHONPATH"] = str(REPO)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mrunc-bench-"))
    host = facts.host_facts(REPO, environment)
    try:
        bench = Bench(args, work)
        plain = bench.startup("plain", workloads.plain(bench.spec, "plain"))
        hardened = bench.startup("hardened", workloads.hardened(bench.spec, "hardened"))
        engines = bench.lifecycle()
        podman_runs = bench.podman()
        mounts = bench.growth("mounts", [int(n) for n in args.mounts.split(",")])
        rules = bench.growth("rules", [int(n) for n in args.rules.split(",")])
        podman = bench.podman_compile()
        profile = bench.profile(work / "bundles" / "plain" / "plan.json")
    finally:
        remove_cgroups()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    host["load_after"] = facts.loadavg()
    text = report.render(host, args, [plain, hardened], mounts, rules, podman, profile, engines, podman_runs)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
