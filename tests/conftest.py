import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ZOO_SHARED", REPO.parent / "shared")).resolve()

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`$ZOO_SHARED` (default ../shared): real split files, videos and reference vectors."""
    if not SHARED.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED}; set ZOO_SHARED to the shared/ folder")
    return SHARED


@pytest.fixture(autouse=True)
def _no_wandb_network(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
