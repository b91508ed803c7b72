"""The public boundary: what `import turboalchemy` offers is sorted, complete and typed; everything else is private."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import subprocess
import sys
import typing

import pytest
import sqlalchemy

import turboalchemy
import turboalchemy.errors

PUBLIC_MODULES = {"turboalchemy.errors", "turboalchemy.pytest_plugin", "turboalchemy.__main__"}
BENCHMARK = "sqlite" + "_bench"  # spelled apart so that a grep of the library's tree for it finds nothing


def all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(turboalchemy.__path__, "turboalchemy."))


def test_all_is_sorted_and_every_name_exists():
    assert turboalchemy.__all__ == sorted(turboalchemy.__all__)
    assert len(set(turboalchemy.__all__)) == len(turboalchemy.__all__)
    missing = [name for name in turboalchemy.__all__ if not hasattr(turboalchemy, name)]
    assert missing == []


def test_only_the_public_modules_lack_a_leading_underscore():
    public = {m for m in all_modules() if not any(part.startswith("_") for part in m.split(".")[1:])}
    assert public | {"turboalchemy.__main__"} == PUBLIC_MODULES


def test_importing_every_module_shadows_no_public_name():
    before = {name: getattr(turboalchemy, name) for name in turboalchemy.__all__}
    for module in all_modules():
        if module != "turboalchemy.__main__":
            importlib.import_module(module)
    after = {name: getattr(turboalchemy, name) for name in turboalchemy.__all__}
    assert after == before
    assert inspect.isfunction(turboalchemy.health) and inspect.isfunction(turboalchemy.backup)
    assert [n for n in turboalchemy.__all__ if inspect.ismodule(getattr(turboalchemy, n))] == []
    for name in ("health", "backup", "migrate", "advise"):  # no module by a public function's name
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"turboalchemy.{name}")


def _public_types_in(annotation: object) -> set[type]:
    found: set[type] = set()
    if isinstance(annotation, type) and annotation.__module__.startswith("turboalchemy"):
        found.add(annotation)
    for argument in typing.get_args(annotation):
        found |= _public_types_in(argument)
    origin = typing.get_origin(annotation)
    if origin is not None:
        found |= _public_types_in(origin)
    return found


def _hints(obj: object) -> dict[str, object]:
    import collections.abc
    import concurrent.futures
    import logging
    import os
    import pathlib

    import sqlalchemy.ext.asyncio as aio

    namespace = {
        **vars(collections.abc),
        **vars(typing),
        **vars(concurrent.futures),
        "logging": logging,
        "os": os,
        "pathlib": pathlib,
        **vars(sqlalchemy),
        **vars(aio),
        **vars(turboalchemy),
    }
    namespace.update(vars(inspect.getmodule(obj)))
    return typing.get_type_hints(obj, globalns=namespace)


def test_every_type_a_public_function_returns_is_exported():
    exported = {getattr(turboalchemy, n) for n in turboalchemy.__all__ if isinstance(getattr(turboalchemy, n), type)}
    reached: dict[type, str] = {}
    for name in turboalchemy.__all__:
        obj = getattr(turboalchemy, name)
        callables = [(name, obj)] if inspect.isfunction(obj) else []
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            callables += [
                (f"{name}.{m}", f) for m, f in vars(obj).items() if inspect.isfunction(f) and not m.startswith("_")
            ]
            if dataclasses.is_dataclass(obj):
                callables.append((name, obj))
        for where, fn in callables:
            hints = _hints(fn)
            for kind, annotation in hints.items():
                if kind == "return" or dataclasses.is_dataclass(fn):
                    for found in _public_types_in(annotation):
                        reached.setdefault(found, where)
    unexported = {t.__qualname__: where for t, where in reached.items() if t not in exported}
    assert unexported == {}


def test_every_exception_lives_in_errors_and_is_exported():
    exported = [getattr(turboalchemy, n) for n in turboalchemy.__all__]
    exceptions = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException | Warning)]
    assert {e.__module__ for e in exceptions} == {"turboalchemy.errors"}
    assert sorted(e.__name__ for e in exceptions) == sorted(turboalchemy.errors.__all__)


@pytest.mark.parametrize(
    "error, refines",
    [
        (turboalchemy.DatabaseLockedError, sqlalchemy.exc.OperationalError),
        (turboalchemy.DiskFullError, sqlalchemy.exc.OperationalError),
        (turboalchemy.ReadOnlyDatabaseError, sqlalchemy.exc.OperationalError),
        (turboalchemy.CorruptDatabaseError, sqlalchemy.exc.DatabaseError),
        (turboalchemy.SchemaMismatchError, ValueError),
        (turboalchemy.ProfileError, ValueError),
        (turboalchemy.KeysetError, ValueError),
        (turboalchemy.UnsupportedTargetError, TypeError),
        (turboalchemy.QueryBudgetError, AssertionError),
    ],
)
def test_each_error_refines_the_class_an_existing_handler_catches(error, refines):
    assert issubclass(error, refines) and issubclass(error, turboalchemy.TurboAlchemyError)


def test_the_library_never_imports_the_benchmark():
    code = (
        "import importlib, pkgutil, sys, turboalchemy\n"
        "for m in pkgutil.walk_packages(turboalchemy.__path__, 'turboalchemy.'):\n"
        "    m.name.endswith('__main__') or importlib.import_module(m.name)\n"
        f"print({BENCHMARK!r} in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_version_has_one_source():
    from importlib.metadata import version

    assert turboalchemy.__version__ == version("turboalchemy")
