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


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory):
    """Every test (and every `zoo` subprocess it starts) writes runs, the leaderboard and caches under a private
    folder, never into the checkout's `runs/`, `leaderboard.csv` or the user's `~/.cache`: the suite passes
    after the quick start in the same checkout and leaves nothing behind."""
    home = tmp_path_factory.mktemp("zoo_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(home))
        mp.setenv("ZOO_CACHE", str(home / "cache"))
        yield home


@pytest.fixture(autouse=True)
def _private_cwd(tmp_path_factory, monkeypatch):
    """Each test runs in an empty working directory: relative defaults (`runs/...`) land there."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _no_wandb_network(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one intra-op thread for a test module (`pytestmark = pytest.mark.usefixtures("one_thread")`): tiny
    models gain nothing from a second thread, and on a busy 2-core machine every small op waits for the others to
    synchronise (10-30x slower). Restores the previous count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
