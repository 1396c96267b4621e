"""What engines call, one process each: create, start and delete of a container, and state, list and kill of a
created one; each runtime through its installed command, alternated round by round as measure.alternate does."""

import os
from dataclasses import dataclass

import measure

SEQUENCE = ("create", "start", "delete")  # one container's life as podman drives it (delete --force, as podman)
CALLS = ("state", "list", "kill 0")  # repeatable: on a created container, which they leave as it is


@dataclass
class Lifecycle:
    steps: dict[str, dict[str, list[measure.Sample]]]  # runtime -> step -> samples (SEQUENCE and CALLS)
    floor: list[measure.Sample]  # `python -I -S -c pass`, alternated with the CALLS
    rss_kb: dict[str, list[int]]  # runtime -> peak RSS of create (its largest process: compile, runtime)


def _argv(command: list[str], root: str, step: str, bundle: str, container_id: str) -> list[str]:
    base = [*command, "--root", root]
    return {"create": [*base, "create", "--bundle", bundle, container_id],
            "start": [*base, "start", container_id],
            "delete": [*base, "delete", "--force", container_id],
            "state": [*base, "state", container_id],
            "list": [*base, "list"],
            "kill 0": [*base, "kill", container_id, "0"]}[step]


def measure_lifecycle(runtimes: dict[str, list[str]], state: str, bundles: dict[str, dict[str, str]],
                      floor: list[str], runs: int, warmup: int, rss_runs: int, logs: str) -> Lifecycle:
    """`runtimes`: name -> command (the installed mrunc, runc, crun); `bundles`: name -> {"held", "life"} -> a
    bundle of its own cgroup (a delete kills all its cgroup holds). Each round: every runtime's create, start,
    delete in turn (runtimes alternated), then the calls on a created container of each (calls alternated)."""
    steps = {name: {step: [] for step in SEQUENCE + CALLS} for name in runtimes}
    floor_samples: list[measure.Sample] = []
    names = list(runtimes)
    held = {name: f"bench-held-{os.getpid()}-{i}" for i, name in enumerate(names)}
    for name, command in runtimes.items():  # the created containers the calls look at
        measure.run_once(_argv(command, f"{state}/{name}", "create", bundles[name]["held"], held[name]),
                         f"{logs}/held.log")
    try:
        for r in range(warmup + runs):
            shift = r % len(names)
            order = names[shift:] + names[:shift]
            for name in order:
                container_id = f"bench-{os.getpid()}-{r}"
                for step in SEQUENCE:
                    argv = _argv(runtimes[name], f"{state}/{name}", step, bundles[name]["life"], container_id)
                    sample = measure.run_once(argv, f"{logs}/{name}-{step}.log")
                    if r >= warmup:
                        steps[name][step].append(sample)
            calls = [(name, step) for step in CALLS for name in order] + [("floor", "")]
            for i in range(len(calls)):
                name, step = calls[(i + r) % len(calls)]
                argv = floor if name == "floor" else \
                    _argv(runtimes[name], f"{state}/{name}", step, bundles[name]["held"], held[name])
                sample = measure.run_once(argv, f"{logs}/{name}-calls.log")
                if r >= warmup:
                    (floor_samples if name == "floor" else steps[name][step]).append(sample)
    finally:
        for name, command in runtimes.items():
            measure.run_once(_argv(command, f"{state}/{name}", "delete", "", held[name]), f"{logs}/held.log")
    rss = {name: [] for name in runtimes}
    for r in range(rss_runs):
        for name, command in runtimes.items():
            container_id = f"bench-rss-{os.getpid()}-{r}"
            out = f"{logs}/{name}-create.rss"
            measure.run_once(["/usr/bin/time", "-f", "%M", "-o", out,
                              *_argv(command, f"{state}/{name}", "create", bundles[name]["life"], container_id)],
                             f"{logs}/rss.log")
            with open(out) as f:
                rss[name].append(int(f.read().split()[-1]))
            measure.run_once(_argv(command, f"{state}/{name}", "delete", "", container_id), f"{logs}/rss.log")
    return Lifecycle(steps, floor_samples, rss)


def sequence_ms(samples: dict[str, list[measure.Sample]]) -> list[float]:
    """create + start + delete of each round, in ms."""
    return [sum(parts) for parts in zip(*([s.wall_ms for s in samples[step]] for step in SEQUENCE), strict=True)]
