from pathlib import Path

import pytest

from tests.datasets.media import write


@pytest.fixture
def cache(tmp_path) -> str:
    """A private index cache, so tests never see each other's (or the user's) cached metadata."""
    return str(tmp_path / "cache")


@pytest.fixture
def video_tree(tmp_path) -> Path:
    """A folder dataset of real small files: AVI/MPEG-4, MP4/H.264, odd size, odd fps, in two class folders."""
    root = tmp_path / "videos"
    write(root / "walk" / "a.avi", n=40, height=60, width=80, fps=25, seed=1)
    write(root / "walk" / "b.mp4", n=36, height=46, width=62, fps=7.5, codec="libx264", seed=2)
    write(root / "run" / "c.avi", n=30, height=72, width=54, fps=29.97, seed=3)
    write(root / "run" / "d.mp4", n=50, height=64, width=64, fps=12, codec="libx264", seed=4)
    return root


@pytest.fixture(autouse=True, params=["decord", "pyav-only"])
def reader(request, monkeypatch, tmp_path) -> str:
    """Every data-layer test runs twice: with decord installed (the default on x86-64 Linux) and with decord
    unimportable, as on macOS and Linux aarch64, where `data.decoder=auto` reads everything with PyAV."""
    from tests.no_decord import block_decord
    from zoo.datasets.decode import decord_available

    if request.param == "decord" and not decord_available():
        pytest.skip("decord is not installed here (no wheel for this platform)")
    if request.param == "pyav-only":
        block_decord(monkeypatch, tmp_path)
    return request.param
