"""The fast path: rows, plans, chunks and the per-backend writers (private; the public names are in turboalchemy)."""
