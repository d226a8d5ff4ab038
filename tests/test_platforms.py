"""Installing and running where decord has no wheels (macOS, Linux aarch64): the requirement's platform marker in the
built metadata, and the whole train -> evaluate path with decord unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from packaging.requirements import Requirement

from tests.conftest import REPO
from tests.datasets.media import write
from tests.no_decord import block_decord, blocker_dir
from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.errors import ZooError
from zoo.leaderboard import read_rows
from zoo.metrics.detectors.seeded import seeded_i3d_state_dict

PLATFORMS = {  # PEP 508 environment of each platform -> does PyPI have a decord wheel for it
    "macOS arm64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"}, False),
    "macOS x86-64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64"}, False),
    "Linux aarch64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"}, False),
    "Linux x86-64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}, True),
    "Windows x86-64": ({"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64"}, True),
}


@pytest.fixture(scope="module")
def built_requirements(tmp_path_factory) -> list[Requirement]:
    """`Requires-Dist` of the metadata setuptools builds from this checkout's setup.cfg."""
    out = tmp_path_factory.mktemp("egg")
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "egg_info",
                    "--egg-base", str(out)], cwd=REPO, check=True, capture_output=True)
    (pkg_info,) = out.glob("*.egg-info/PKG-INFO")
    lines = pkg_info.read_text().splitlines()
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_built_metadata_selects_decord_only_where_it_has_wheels(built_requirements, platform):
    environment, has_wheel = PLATFORMS[platform]
    (decord,) = [r for r in built_requirements if r.name == "decord"]
    assert decord.marker is not None, "decord must carry a platform marker, or installing fails on macOS"
    assert decord.marker.evaluate(environment) is has_wheel
    pyav = [r for r in built_requirements if r.name == "av"]
    assert pyav and (pyav[0].marker is None or pyav[0].marker.evaluate(environment)), "PyAV is needed everywhere"


def test_blocked_decord_is_unimportable_in_child_processes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(blocker_dir(tmp_path))}
    child = subprocess.run([sys.executable, "-c", "import decord"], env=env, capture_output=True, text=True)
    assert child.returncode != 0 and "ImportError" in child.stderr


def test_asking_for_decord_where_it_is_missing_is_one_clear_line(monkeypatch, tmp_path):
    block_decord(monkeypatch, tmp_path)
    write(tmp_path / "videos" / "a" / "x.avi", n=20, height=32, width=32)
    config = DataConfig(name="folder", root=str(tmp_path / "videos"), frames=4, resolution=16, decoder="decord",
                        index_cache=str(tmp_path / "cache"))
    with pytest.raises(ZooError, match="decord is not installed.*data.decoder=auto or pyav") as info:
        build_dataset("folder", config)
    assert "\n" not in str(info.value)


def test_without_decord_zoo_trains_and_evaluates_on_a_folder_dataset(tmp_path):
    """As on a Mac: `zoo fit` then `zoo eval` in processes where `import decord` fails; the run and the
    leaderboard row record that PyAV read the videos."""
    import av

    for i, label in enumerate(["walk", "walk", "run", "run"]):
        write(tmp_path / "videos" / label / f"{i}.avi", n=24, height=40, width=48, seed=i)
    weights = tmp_path / "seeded_i3d.pt"
    torch.save(seeded_i3d_state_dict(), weights)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker_dir(tmp_path / "block")), str(REPO)]),
           "ZOO_CACHE": str(tmp_path / "cache"), "ZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    data = ["--data", "folder", "--data-root", str(tmp_path / "videos"), "--set", "data.frames=4",
            "--set", "data.resolution=16", "--set", f"data.index_cache={tmp_path / 'index'}"]
    zoo = [sys.executable, "-m", "zoo.cli"]
    fit = subprocess.run(zoo + ["fit", "--model", "mocogan", "--config", str(REPO / "experiments/mocogan/tiny.yaml"),
                                *data, "--run-dir", str(tmp_path / "run"), "--max-steps", "2"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert fit.returncode == 0, fit.stderr[-2000:]
    pyav = f"PyAV {av.__version__}"
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["recorded"]
    assert recorded["video_reader"] == pyav
    board = tmp_path / "board.csv"
    ev = subprocess.run(zoo + ["eval", "--metric", "fvd", "--ckpt", str(tmp_path / "run/checkpoints/last.ckpt"),
                               "--real-dir", str(tmp_path / "videos"), "--num-samples", "4", "--num-real", "4",
                               "--detector-weights", str(weights), "--batch-size", "2", "--leaderboard", str(board)],
                        env=env, capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    (row,) = read_rows(board)
    assert json.loads(row["protocol"])["detector"]["video_reader"] == pyav
