"""What a user's type checker infers for the public API: tests/typing/public_api.py under mypy --strict."""

from __future__ import annotations

import pathlib

import pytest

api = pytest.importorskip("mypy.api")

HERE = pathlib.Path(__file__).parent


def test_a_users_type_checker_infers_the_documented_types():
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--config-file=", str(HERE / "typing" / "public_api.py")]
    )
    assert status == 0, out + err
