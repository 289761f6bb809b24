"""The campaign imports the test support as `tests.*` (as bench/faults.py does): the repository's
root must be importable, as it is under `python -m pytest`."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
