"""What several commands share: error output, compiling with a readable error, running a plan."""


def preserved_fds(text: str) -> int:
    """--preserve-fds N (create, run, exec): fds 3 to 3+N-1 pass on, so N is 0 or more (-1 would close stderr)."""
    if not text.isdigit():
        raise ValueError(f"{text}; allowed: 0 or more (fds 3 to 3+N-1 pass to the process)")
    return int(text)


def fail(message: str, status: int = 1) -> int:
    """Report an error on stderr and in the --log file; returns `status`."""
    from mrunc import log

    log.error(message)
    return status


def compile_or_error(config_path: str, container_id: str | None = None, console_socket: str | None = None,
                     **extra: object) -> dict | str:
    """The plan, or the error text naming the field. `extra`: compile_config's exec_fifo, preserve_fds, strict, raw."""
    import gc

    gc.disable()  # compiling (mostly imports) keeps nearly all it allocates: collections would be ~8% wasted work
    from mrunc.compiler.compile import compile_config
    from mrunc.compiler.errors import ConfigError, ConfigErrors

    try:
        return compile_config(config_path, container_id, console_socket=console_socket, **extra)
    except (ConfigError, ConfigErrors) as e:
        return f"{config_path}: invalid config:\n  " + str(e).replace("\n", "\n  ")
    except OSError as e:
        return f"{config_path}: {e.strerror}"
    finally:
        # What follows in this process only writes the plan out (`mrunc compile`; for create and run, the child of
        # compile_apart.py, which then exits: the plan runs in its parent). Re-enabled with compile's ~30,000 young
        # objects, the first collection dumps triggers would scan them all (podman's plan: 6-7 ms, not 1.6, when
        # this was measured in 5ea0d93); frozen, no collection scans them again.
        gc.freeze()
        gc.enable()


def execute(plan: dict, trace: bool, **lifecycle: object) -> int:
    """Run a checked plan; errors become one line on stderr and status 1. `lifecycle`: created, detach."""
    from mrunc.executor.run import OpFailed
    from mrunc.executor.run import execute as run_plan

    try:
        return run_plan(plan, trace, **lifecycle)
    except OpFailed as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))
