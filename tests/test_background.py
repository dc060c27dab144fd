"""Items made in a forked child: order, errors, an early end, and no inherited descriptors."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from solidline import LogLocked
from solidline._background import made_in_child
from solidline._files import exclusive_lock


def test_the_items_arrive_in_order_made_by_another_process() -> None:
    def make() -> Iterator[tuple[int, int]]:
        for n in range(50):
            yield n, os.getpid()

    items = list(made_in_child(make))
    assert [n for n, _ in items] == list(range(50))
    assert {pid for _, pid in items} != {os.getpid()}


def test_an_error_in_the_child_is_raised_in_the_parent_after_the_items_before_it() -> None:
    def make() -> Iterator[int]:
        yield 1
        raise LogLocked("a lock held elsewhere")

    made = made_in_child(make)
    assert next(made) == 1
    with pytest.raises(LogLocked, match="a lock held elsewhere"):
        next(made)


def test_an_error_that_does_not_pickle_is_named() -> None:
    class Local(Exception):
        pass

    def make() -> Iterator[int]:
        raise Local("no way through pickle")
        yield 0

    with pytest.raises(RuntimeError, match="Local: no way through pickle"):
        list(made_in_child(make))


def test_a_child_that_dies_is_not_taken_for_the_end() -> None:
    def make() -> Iterator[int]:
        yield 1
        os._exit(3)

    with pytest.raises(RuntimeError, match="stopped early"):
        list(made_in_child(make))


def test_closing_early_kills_the_child() -> None:
    def make() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    made = made_in_child(make)
    assert next(made) == 0
    made.close()  # returns only once the child is reaped: an endless child would hang here


def test_the_child_holds_no_lock_of_the_parents(tmp_path: Path) -> None:
    def make() -> Iterator[int]:
        yield 1
        time.sleep(30)  # still running when the parent lets go of the lock
        yield 2

    with exclusive_lock(tmp_path / "lock", "busy"):
        made = made_in_child(make)
        assert next(made) == 1
    try:
        with exclusive_lock(tmp_path / "lock", "busy"):  # raises LogLocked if the child held it
            pass
    finally:
        made.close()
