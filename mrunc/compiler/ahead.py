"""Work started ahead in a forked child while this process goes on; its result comes back as JSON on a pipe.

Commands compile this way (compile.py): most of a compile is importing jsonschema (~60 ms) and validating, and
the lowering (its modules, pyseccomp, libseccomp: ~35 ms for podman's config) need not wait for them. So the
child lowers while the parent validates, on the other core. The child gets the config unvalidated: when it fails,
the caller lowers again itself, so an error is raised as without a child, after validation.
"""

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Child:
    def __init__(self, work: Callable[[], object]) -> None:
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read)
            _child_main(work, write)
        os.close(write)
        self.pipe = open(read, "rb")
        self.pidfd = os.pidfd_open(self.pid)  # a signal reaches this child even if its pid is reaped and reused
        self.taken = False

    def result(self) -> object | None:
        """What `work` returned, or None if it failed."""
        self.taken = True
        with self.pipe:
            data = self.pipe.read()
        return json.loads(data) if self._reap() == 0 else None

    def kill(self) -> None:
        import signal

        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:  # gone already
            pass
        self.pipe.close()
        self._reap()

    def _reap(self) -> int | None:
        """The child's wait status; None if our caller left SIGCHLD ignored (a process started so inherits
        it), which makes the kernel reap children itself: its exit status is lost, so its result is not used."""
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return None
        finally:
            os.close(self.pidfd)


def _child_main(work: Callable[[], object], write: int) -> None:
    status = 1
    try:
        with open(write, "wb") as out:
            out.write(json.dumps(work()).encode())
        status = 0
    except BaseException:  # the caller does the work again and reports the error
        pass
    finally:
        os._exit(status)  # nothing of the parent's (buffers, finally blocks up the stack) runs twice


@contextmanager
def in_child(work: Callable[[], object]) -> Iterator[Child]:
    """A child doing `work` now; killed on leaving the block unless its result was taken."""
    child = Child(work)
    try:
        yield child
    finally:
        if not child.taken:
            child.kill()
