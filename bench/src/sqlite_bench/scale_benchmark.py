"""`python -m sqlite_bench.scale_benchmark`: the study's 11-configuration sweep with checkpoints."""

import sys

from .cli import scale_benchmark

if __name__ == "__main__":
    sys.exit(scale_benchmark())
