"""What every diagnostic shares: finding the Engine behind a target, a statement's kind and shape,
and the first line of user code that caused a statement."""

from __future__ import annotations

import os
import re
import sys
from types import FrameType
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Connection, Engine

from turboalchemy._targets import bind_of

_SKIP = (os.path.dirname(sqlalchemy.__file__), os.path.dirname(os.path.dirname(__file__)))
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_PLACEHOLDER = re.compile(r"\?|%\(\w+\)s|%s|:\w+|\$\d+")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACE = re.compile(r"\s+")


def engine_of(target: Any, what: str) -> Engine | Connection:
    """The object to listen on: an Engine, a Session's bind, or a Connection as given."""
    return bind_of(target, what)


def kind_of(statement: str) -> str:
    """select, insert, update, delete, or the statement's first keyword (pragma, begin, create ...)."""
    word = statement.lstrip(" (\n\t").split(None, 1)[0].lower() if statement.strip() else ""
    return "select" if word == "with" and "select" in statement[:200].lower() else word or "other"


def shape_of(statement: str) -> str:
    """The statement with literals and parameters replaced by '?', IN-lists folded, whitespace collapsed,
    so that the same query with different values has one shape."""
    text = _STRING.sub("?", statement)
    text = _NUMBER.sub("?", text)
    text = _PLACEHOLDER.sub("?", text)
    text = _LIST.sub("(?)", text)
    return _SPACE.sub(" ", text).strip()


def caller() -> str:
    """file:line in function, for the innermost frame outside SQLAlchemy, turboalchemy and the stdlib's contextlib."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if (
            not filename.startswith(_SKIP)
            and not filename.endswith(("contextlib.py", "threading.py"))
            and not filename.startswith("<")
        ):
            name = frame.f_code.co_name
            if name.startswith("<") and frame.f_back is not None:  # <genexpr>, <listcomp>: name its function too
                name += f" of {frame.f_back.f_code.co_name}"
            return f"{filename}:{frame.f_lineno} in {name}"
        frame = frame.f_back
    return "<unknown>"


def parameter_count(parameters: Any, executemany: bool) -> int:
    if parameters is None:
        return 0
    if executemany:
        return sum(len(p) for p in parameters)
    return len(parameters)
