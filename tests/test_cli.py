"""`zoo` end to end: the console script for a real run, `main()` in-process for the error paths."""

import os
import subprocess
import sys

import decord
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import REPO
from zoo.cli import main

TINY = str(REPO / "experiments" / "mocogan" / "tiny.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real `zoo fit` through the installed console script."""
    out = tmp_path_factory.mktemp("cli") / "run"
    cmd = ["zoo", "fit", "--model", "mocogan", "--data", "shapes", "--config", TINY, "--run-dir", str(out),
           "--set", "train.sample_every=2", "--max-steps", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_fit_leaves_a_complete_run_directory(run_dir):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model_name"] == "mocogan" and config["train"]["max_steps"] == 4
    assert config["data"]["frames"] == 8, "tiny.yaml must be applied"
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step=0000002.ckpt", "step=0000004.ckpt"]
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert "train/d_video" in rows[0] and len(rows) == 5
    gifs = sorted((run_dir / "samples").glob("*.gif"))
    assert [g.name for g in gifs] == ["step=0000002.gif", "step=0000004.gif"]
    with Image.open(gifs[-1]) as gif:
        assert gif.n_frames == 8
        assert gif.size[0] > 2 * gif.size[1] * 0.9, "real and generated grids side by side"


def test_sample_any_model_from_its_checkpoint(run_dir, tmp_path):
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["sample", "--ckpt", ckpt, "--num", "3", "--out", str(tmp_path / "s.gif")]) == 0
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 8
    assert main(["sample", "--ckpt", ckpt, "--num", "2", "--frames", "12", "--labels", "4",
                 "--out", str(tmp_path / "s.mp4")]) == 0
    assert len(decord.VideoReader(str(tmp_path / "s.mp4"))) == 12


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mocogan" in out and "Tulyakov" in out and "shapes" in out
    assert main(["list", "datasets"]) == 0
    assert "mocogan" not in capsys.readouterr().out


def test_print_config(capsys):
    assert main(["fit", "--model", "mocogan", "--config", TINY, "--frames", "6", "--print-config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["frames"] == 6 and config["model"]["ngf"] == 8


def test_data_synth_writes_decodable_videos(tmp_path):
    assert main(["data", "synth", "--out", str(tmp_path), "--num", "3", "--frames", "10", "--resolution", "32"]) == 0
    files = sorted(tmp_path.rglob("*.mp4"))
    assert len(files) == 3
    for f in files:
        reader = decord.VideoReader(str(f))
        assert len(reader) == 10 and reader[0].shape == (32, 32, 3)
        assert "_" in f.parent.name  # class folder = shape_motion


def error_of(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_gives_one_line_errors(capsys, tmp_path):
    assert "valid models: " in error_of(capsys, ["fit", "--model", "nope"])
    assert "valid datasets: " in error_of(capsys, ["fit", "--model", "mocogan", "--data", "nope"])
    err = error_of(capsys, ["fit", "--model", "mocogan", "--set", "model.speed=3"])
    assert "model.speed" in err and "valid model keys" in err
    err = error_of(capsys, ["fit", "--model", "mocogan", "--run-dir", str(tmp_path / "empty"), "--resume"])
    assert "no checkpoint" in err
    err = error_of(capsys, ["fit", "--model", "mocogan", "--config", TINY, "--accelerator", "cpu", "--devices", "4096"])
    assert "--devices 4096" in err
    assert "does not exist" in error_of(capsys, ["sample", "--ckpt", str(tmp_path / "x.ckpt"), "--out", "a.gif"])


def test_existing_run_is_never_overwritten(run_dir, capsys):
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.stat().st_mtime_ns
    err = error_of(capsys, ["fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(run_dir)])
    assert "--resume" in err
    assert last.stat().st_mtime_ns == before


def test_checkpoint_of_another_model_is_refused(run_dir, tmp_path, capsys):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    checkpoint["zoo"]["model_name"] = "some_other_model"
    other = tmp_path / "other.ckpt"
    torch.save(checkpoint, other)
    err = error_of(capsys, ["fit", "--model", "mocogan", "--run-dir", str(tmp_path / "r"), "--resume", str(other)])
    assert "holds a 'some_other_model' model, not 'mocogan'" in err
    not_zoo = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, not_zoo)
    assert "not a video-zoo checkpoint" in error_of(capsys, ["sample", "--ckpt", str(not_zoo), "--out", "a.gif"])


def test_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "zoo.cli", "list", "models"], capture_output=True, text=True)
    assert done.returncode == 0 and "mocogan" in done.stdout


def test_wandb_logger_runs_offline_without_a_key(tmp_path, monkeypatch):
    """No API key: the run is logged offline (sync later), with scalars and the sample GIFs as media."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc key either
    run = tmp_path / "run"
    assert main(["fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(run), "--logger", "wandb",
                 "--set", "train.sample_every=2"]) == 0
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, "the wandb run must be offline"
    assert len(list(offline[0].glob("files/media/videos/*.gif"))) == 2
    assert (run / "metrics.csv").is_file(), "the CSV is written whatever the logger"
