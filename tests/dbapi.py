"""The SQLite DB-API module this test run uses everywhere: turboalchemy's engines (driver="auto"), SQLAlchemy's
own reference engines (conftest points its pysqlite dialect here) and the tests' direct connections.

CI runs the suite once per module: TURBOALCHEMY_SQLITE_DRIVER=stdlib, or unset (pysqlite3 where it is installed).
Two SQLite libraries on one file in one process can corrupt it, so a test never mixes them on one file."""

from __future__ import annotations

from turboalchemy import _driver

SQLITE = _driver.module()
NAME = _driver.name(SQLITE)
