"""retrainer's tests. ``SHARED_DATA``: the real data sets beside the repository (``../shared``)."""

import os
from pathlib import Path

_candidates = [
    os.environ.get("RETRAINER_SHARED_DATA", ""),
    Path(__file__).resolve().parents[1].parent / "shared" / "data",
    "/work/shared/data",
]
SHARED_DATA = next((Path(p) for p in _candidates if p and Path(p).is_dir()), Path(_candidates[1]))
