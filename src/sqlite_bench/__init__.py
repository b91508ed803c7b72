"""sqlite_bench: the study's SQLite write benchmark, reproduced faithfully and fairly, with turbolite's paths beside it."""

__all__: list[str] = []
