"""Deterministic, streaming rows for `bench_rows`.

Row n always has the same natural key (entity n % 1000, sub-entity (n // 1000) % 1000, bucket
n // 1_000_000), the same row_id and, per phase, the same payload, whatever the chunk size and
wherever a run starts; so a resumed run continues exactly, and the upsert phase regenerates the
insert phase's keys with a new payload and really conflicts on every row. Randomness is drawn from
one seeded generator per block of 1,000 rows, so memory stays constant at any scale.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Literal

Phase = Literal["insert", "upsert"]
PHASES: tuple[Phase, ...] = ("insert", "upsert")
Key = Literal["uuid4", "uuid7"]
KEYS: tuple[Key, ...] = ("uuid4", "uuid7")
BLOCK = 1_000
DEFAULT_SEED = 20_240_611
_EPOCH = datetime(2025, 1, 1)
_EPOCH_MS = 1_735_689_600_000  # _EPOCH as Unix milliseconds
_V7_RANDOM = (1 << 74) - 1
_MS = timedelta(milliseconds=1)
_DAY = timedelta(days=1)


def row_index(entity_id: int, sub_entity_id: int, bucket_index: int) -> int:
    """Invert the natural-key layout: the stream position of the row with this key."""
    return bucket_index * 1_000_000 + sub_entity_id * 1_000 + entity_id


def _uuid7_text(ms: int, random_bits: int) -> str:
    """A UUIDv7 for a given millisecond and 74 random bits (RFC 9562 layout: 48-bit time, version 7,
    12 bits, variant 10, 62 bits). Built here, not by uuid-utils, because the benchmark needs the same
    key for row n on every run; turboalchemy.uuid7() is what applications use."""
    value = (ms << 80) | (0x7 << 76) | ((random_bits >> 62) << 64) | (0b10 << 62) | (random_bits & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class RowGenerator:
    """Rows of `bench_rows` for one seed: a fixed tenant, deterministic keys and payloads.

    key="uuid4" draws random UUIDv4 keys, as the study; key="uuid7" gives row n a UUIDv7 whose time is
    its created_at, so keys grow with n as they would when rows arrive over time."""

    def __init__(self, seed: int = DEFAULT_SEED, key: Key = "uuid4") -> None:
        if key not in KEYS:
            raise ValueError(f"key must be one of {KEYS}, not {key!r}")
        self.seed = seed
        self.key = key
        self.tenant_id = str(uuid.UUID(int=random.Random(f"tenant:{seed}").getrandbits(128), version=4))

    def rows(self, start: int, stop: int, phase: Phase = "insert") -> Iterator[dict]:
        """Rows start..stop-1 as dicts keyed by column name."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        upsert = phase == "upsert"
        tenant = self.tenant_id
        UUID = uuid.UUID
        time_ordered = self.key == "uuid7"
        for block in range(start // BLOCK, -(-stop // BLOCK)):
            ids = random.Random(f"id:{self.seed}:{block}")
            pay = random.Random(f"{phase}:{self.seed}:{block}")
            first = block * BLOCK
            for n in range(first, first + BLOCK):
                # Draw for every row of the block, kept or not, so values never depend on `start`.
                bits = ids.getrandbits(128)
                row_id = (
                    _uuid7_text(_EPOCH_MS + n, bits & _V7_RANDOM) if time_ordered else str(UUID(int=bits, version=4))
                )
                x = round(pay.uniform(-1000.0, 1000.0), 6)
                y = round(pay.uniform(-1000.0, 1000.0), 6)
                z = round(pay.uniform(0.0, 100.0), 6)
                category = pay.randint(0, 4)
                weight = round(pay.betavariate(5.0, 2.0), 4)
                if n < start:
                    continue
                if n >= stop:
                    return
                created = _EPOCH + n * _MS
                yield {
                    "row_id": row_id,
                    "tenant_id": tenant,
                    "entity_id": n % 1000,
                    "sub_entity_id": (n // 1000) % 1000,
                    "bucket_index": n // 1_000_000,
                    "measurement_x": x,
                    "measurement_y": y,
                    "measurement_z": z,
                    "category_id": category,
                    "weight": weight,
                    "status": 1 if upsert else 0,
                    "created_at": created,
                    "updated_at": created + _DAY if upsert else None,
                }

    def chunks(self, start: int, stop: int, chunk_size: int, phase: Phase = "insert") -> Iterator[list[dict]]:
        """Rows start..stop-1 in lists of at most chunk_size; only one chunk is alive at a time."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        rows = self.rows(start, stop, phase)
        while chunk := list(islice(rows, chunk_size)):
            yield chunk

    def row(self, n: int, phase: Phase = "insert") -> dict:
        """Row n alone, for verification."""
        return next(self.rows(n, n + 1, phase))
