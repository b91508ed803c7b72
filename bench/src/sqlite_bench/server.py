"""A fresh PostgreSQL database per benchmark cell, on the server `--db URL` names, dropped once the cell passes."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.engine import URL, make_url


def is_server(db: str | None) -> bool:
    """True for a database URL (PostgreSQL), False for an SQLite file path."""
    return bool(db) and "://" in str(db)


def _admin(url: URL):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=url.host or "localhost",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
    )


def create_database(server_url: str, label: str, template: str | None = None) -> str:
    """Create a database named after the cell on the server, empty or a copy of `template` (the URL of a database
    on the same server that nobody is connected to); return its URL."""
    from psycopg import sql

    url = make_url(server_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"--db takes a postgresql+psycopg:// URL, not {url.get_backend_name()}")
    name = f"sqlite_bench_{re.sub(r'[^a-z0-9]+', '_', label.lower())[:40]}_{uuid.uuid4().hex[:8]}"
    with _admin(url) as admin:
        if template is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            source = sql.Identifier(str(make_url(template).database))
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), source))
    return url.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def database_exists(db_url: str) -> bool:
    url = make_url(db_url)
    try:
        with _admin(url.set(database="postgres")) as admin:
            return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone() is not None
    except Exception:
        return False


def drop_database(db_url: str) -> None:
    from psycopg import sql

    url = make_url(db_url)
    with _admin(url.set(database="postgres")) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(url.database)))


def redact(db_url: str) -> str:
    return make_url(db_url).render_as_string(hide_password=True)
