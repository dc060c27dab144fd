"""Items made in a forked child process while the parent goes on with those already made.

``digest --send`` composes its messages in a child while the parent sends the ones already
composed: composing is Python work for the processor and sending mostly waits on the server,
so on two cores the two overlap (a thread would not: both need the one interpreter lock).
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["made_in_child"]

T = TypeVar("T")


def made_in_child(make: Callable[[], Iterable[T]]) -> Iterator[T]:
    """The items ``make()`` yields, made in a forked child and handed over as they come.

    The child holds none of the parent's file descriptors but its end of the pipe (a lock the
    parent holds ends with the parent), and it dies of a broken pipe when the parent is gone.
    An exception in the child is raised here, as itself where it pickles. Closing the iterator
    early kills the child. Where there is no ``fork``, the items are made in this process.

    Raises:
        RuntimeError: the child died without saying why (killed, out of memory).
    """
    if not hasattr(os, "fork"):
        yield from make()
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(make, read_end, write_end)  # never returns
    os.close(write_end)
    finished = False
    try:
        with open(read_end, "rb") as source:
            while True:
                try:
                    made, item = pickle.load(source)
                except EOFError:
                    break
                if not made:
                    raise item
                yield item
        finished = True
    finally:
        if not finished:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if finished and status != 0:
        raise RuntimeError(f"the process making the items stopped early (wait status {status})")


def _child(make: Callable[[], Iterable[T]], read_end: int, write_end: int) -> None:
    code = 1
    try:
        os.close(read_end)
        os.closerange(3, write_end)
        os.closerange(write_end + 1, os.sysconf("SC_OPEN_MAX"))
        with open(write_end, "wb") as out:
            try:
                for item in make():
                    pickle.dump((True, item), out, pickle.HIGHEST_PROTOCOL)
                    out.flush()
            except Exception as exc:  # handed to the parent, which raises it
                pickle.dump((False, _portable(exc)), out, pickle.HIGHEST_PROTOCOL)
        code = 0
    finally:
        os._exit(code)  # no cleanup of the parent's: its objects are the parent's to close


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{exc.__class__.__name__}: {exc}")
    return exc
