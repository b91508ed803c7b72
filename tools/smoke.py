"""Smoke test of the library's wheel, run by `make wheels` inside a clean venv that has only that wheel installed.

Catches what the editable install used by the tests hides: a missing dependency, a module or package-data
file left out of the wheel, a heavy dependency pulled in by accident.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import pathlib
import shutil
import sqlite3
import sys
import tempfile

from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import turboalchemy


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


def main() -> int:
    package = pathlib.Path(turboalchemy.__file__).parent
    assert "site-packages" in str(package), f"imported from {package}, not from the installed wheel"
    assert (package / "py.typed").exists(), "py.typed is missing from the wheel"
    assert turboalchemy.__version__ == importlib.metadata.version("turboalchemy")
    installed = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())
    heavy = [name for name in ("matplotlib", "numpy", "psutil", "rich", "pillow", "sqlite-bench") if name in installed]
    assert not heavy, f"the library's wheel pulled in {heavy}"
    assert importlib.util.find_spec("sqlite_bench") is None, "the benchmark is inside the library's wheel"
    assert shutil.which("turboalchemy", path=str(pathlib.Path(sys.executable).parent)), "no turboalchemy command"

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "smoke.db"
        engine = turboalchemy.create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(engine)
        written = turboalchemy.bulk_insert(engine, Item, ({"id": i, "name": f"item {i}"} for i in range(1000)))
        engine.dispose()
        with sqlite3.connect(path) as conn:
            stored = conn.execute("SELECT count(*), max(name) FROM items").fetchone()
        assert written == 1000 and stored == (1000, "item 999"), (written, stored)
    print(
        f"smoke: turboalchemy {turboalchemy.__version__} from its wheel, {len(installed)} distributions "
        f"installed ({', '.join(installed)}); bulk_insert stored 1,000 rows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
