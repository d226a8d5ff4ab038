"""Where `zoo` writes by default: run directories and the leaderboard live under one folder, never the source tree.

`$ZOO_HOME` (if set) holds `runs/` (and so `runs/leaderboard.csv` and its sample GIFs); otherwise `runs/` in the
working directory, which `.gitignore` keeps out of a checkout. Caches are separate: `$ZOO_CACHE`.
"""

from __future__ import annotations

import os
from pathlib import Path


def runs_root() -> Path:
    """`$ZOO_HOME/runs`, or `runs` relative to the working directory."""
    home = os.environ.get("ZOO_HOME")
    return Path(home) / "runs" if home else Path("runs")


def default_leaderboard() -> Path:
    """The CSV `zoo eval` appends to and `zoo leaderboard` renders when no file is named."""
    return runs_root() / "leaderboard.csv"
