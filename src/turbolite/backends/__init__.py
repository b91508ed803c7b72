"""Per-dialect execution of one chunk: SQLite (executemany) now; PostgreSQL (COPY) to come."""
