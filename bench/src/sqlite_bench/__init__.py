"""sqlite_bench: the study's SQLite write benchmark, reproduced faithfully and fairly, with turboalchemy's paths beside it."""

__version__ = "0.1.0"
__all__: list[str] = []
