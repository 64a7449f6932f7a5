"""Measure the checkout these scripts live in, not an installed copy.

A script run as ``python benchmarks/bench_x.py`` has ``benchmarks/`` on its
path, not the repository root, so ``import sklearn_mmoe`` finds whatever is
installed: after a non-editable ``pip install .`` (CI's, or a clone's), that
is a copy of an older commit, and the figures printed would be its own.
Importing this module first puts the repository root at the front of the
path; every benchmark imports it before ``sklearn_mmoe``.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
