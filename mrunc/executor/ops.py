"""Import every op module so the table in optable.OPS is complete (the exec path imports what a plan needs: find)."""

from mrunc.executor.optable import COMMON_MODULES, OPS, PROCESSES, RARE_MODULES, Context, Op, load

load(COMMON_MODULES + RARE_MODULES)

__all__ = ["OPS", "PROCESSES", "Context", "Op"]
