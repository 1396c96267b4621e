"""`podman run --rm IMAGE true` through each runtime, as users feel it: podman and conmon set up as the tests set
them up (tests/engines.py: a sandbox of its own mount and network namespaces, storage in a scratch dir), the
runtimes named in containers.conf, alternated round by round."""

import subprocess
from pathlib import Path

import measure

from tests.engines import Sandbox, podman_env, rootfs_tar

IMAGE = "localhost/mrunc-bench-busybox:latest"


class PodmanBench:
    def __init__(self, work: Path, rootfs: Path, runtimes: dict[str, str], cgroup_parent: str) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.sandbox = Sandbox(work)
        self.cgroup_parent = cgroup_parent
        self.env = podman_env(work, runtimes)
        imported = self.sandbox.run("podman", "import", "-q", str(rootfs_tar(rootfs, work / "rootfs.tar")), IMAGE,
                                    env=self.env, timeout=120)
        if imported.returncode != 0:
            self.close()
            raise measure.RunFailed(f"podman import: {imported.stderr.strip()[-400:]}")

    def command(self, runtime: str) -> list[str]:
        """The podman command line for one `run --rm` through `runtime`, entering the sandbox."""
        env = [f"{k}={v}" for k, v in self.env.items()]
        return self.sandbox.command("env", "-i", *env, "podman", "--runtime", runtime, "run", "--rm",
                                    "--pull=never", f"--cgroup-parent={self.cgroup_parent}", IMAGE, "true")

    def measure(self, runtimes: list[str], runs: int, warmup: int, logs: str
                ) -> tuple[dict[str, list[measure.Sample]], dict[str, str]]:
        """Samples of each runtime that runs here; and why the others were left out."""
        usable, skipped = {}, {}
        for name in runtimes:
            try:
                measure.run_once(self.command(name), f"{logs}/podman-probe.log")
                usable[name] = self.command(name)
            except measure.RunFailed as e:
                skipped[name] = str(e).split(": exit ", 1)[-1]
        return measure.alternate(usable, runs, warmup, logs), skipped

    def close(self) -> None:
        subprocess.run(self.sandbox.command("env", "-i", *[f"{k}={v}" for k, v in self.env.items()], "podman", "rm",
                                            "--all", "--force", "--time", "0"), capture_output=True, timeout=120)
        self.sandbox.close()
