"""Make decord unimportable, as on platforms without decord wheels (macOS, Linux aarch64)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def blocker_dir(folder: Path) -> Path:
    """A folder whose `decord` package fails to import; put it first on PYTHONPATH for child processes."""
    package = folder / "decord"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('raise ImportError("No module named decord (blocked: as on macOS)")\n')
    return folder


def block_decord(monkeypatch, tmp_path: Path) -> None:
    """Block decord in this process and in every process it starts (forked or spawned)."""
    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` raises ImportError in this process
    blocker = blocker_dir(tmp_path / "no-decord")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
