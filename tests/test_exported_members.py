"""The public API is what ``solidline/__init__.py`` exports: complete and sorted."""

from __future__ import annotations

import importlib
import inspect

import solidline


def test_all_is_sorted_and_unique() -> None:
    assert list(solidline.__all__) == sorted(set(solidline.__all__))


def test_all_names_exist() -> None:
    missing = [name for name in solidline.__all__ if not hasattr(solidline, name)]
    assert missing == []


def test_every_public_member_is_exported() -> None:
    public = {
        name
        for name, value in vars(solidline).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", "").startswith("solidline")
    }
    assert public - set(solidline.__all__) == set()


def test_exported_members_claim_the_package() -> None:
    # errors and classes keep their home module, but each one is importable from the package
    for name in solidline.__all__:
        member = getattr(solidline, name)
        module = getattr(member, "__module__", None)
        if module is not None and module.startswith("solidline"):
            assert getattr(importlib.import_module(module), name) is member
