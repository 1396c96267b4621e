"""Import every op module so the table in optable.OPS is complete."""

import mrunc.executor.ops_net  # noqa: F401  (network devices)
import mrunc.executor.ops_procattrs  # noqa: F401  (personality, scheduler, I/O priority)
from mrunc.executor import ops_cgroup, ops_fs, ops_lifecycle, ops_ns, ops_process, ops_runtime, ops_tty  # noqa: F401
from mrunc.executor.optable import OPS, PROCESSES, Context, Op

__all__ = ["OPS", "PROCESSES", "Context", "Op"]
