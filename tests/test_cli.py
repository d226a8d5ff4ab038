"""`zoo` end to end: the console script for a real run, `main()` in-process for the error paths."""

import os
import re
import subprocess
import sys
from pathlib import Path

import decord
import pytest
import torch
import yaml
from PIL import Image

from tests.commands import ZOO
from tests.conftest import REPO
from zoo.cli import main

TINY = str(REPO / "experiments" / "mocogan" / "tiny.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real `zoo fit` through the console script of the interpreter running the suite."""
    out = tmp_path_factory.mktemp("cli") / "run"
    cmd = [*ZOO, "fit", "--model", "mocogan", "--data", "shapes", "--config", TINY, "--run-dir", str(out),
           "--set", "train.sample_every=2", "--max-steps", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    (out.parent / "console.txt").write_text(done.stdout + done.stderr)
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
        assert gif.size[1] == 2 * 96 + 3 * 2, "2 rows of 32-pixel tiles enlarged 3x to 96 pixels, 2-pixel separators"


def test_fit_console_counts_steps_without_alarms(run_dir):
    console = (run_dir.parent / "console.txt").read_text()
    assert "steps" in console and "4/4" in console, console[-2000:]
    assert "Epoch 0" not in console, "the bar counts training steps, not batches of a sampler epoch"
    assert "will be deleted" not in console, "a fresh run deletes nothing and must not say so"
    python_warnings = [line for line in console.splitlines() if re.search(r"\.py:\d+: ", line)]
    assert not python_warnings, python_warnings  # "file.py:21: ... is deprecated" and kin: noise a user cannot act on
    assert "Tip:" not in console, "Lightning's advertisement (litlogger) is noise"
    assert "Flops" not in console and "FLOPs" not in console, "Lightning's FLOPs read 0 without an example input"
    assert "Trainable params" in console, "the model summary itself informs"
    assert "Skipping setting a default" not in console, "how the summary is configured is no news to a user"


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


def test_sample_bad_input_gives_one_line_errors(run_dir, tmp_path, capsys):
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    out = str(tmp_path / "s.gif")
    assert "--num must be at least 1" in error_of(capsys, ["sample", "--ckpt", ckpt, "--num", "0", "--out", out])
    for frames in ("0", "1"):
        err = error_of(capsys, ["sample", "--ckpt", ckpt, "--frames", frames, "--out", out])
        assert "--frames must be at least 2" in err
    if not torch.cuda.is_available():
        err = error_of(capsys, ["sample", "--ckpt", ckpt, "--device", "cuda", "--out", out])
        assert "no CUDA device" in err and "--device cpu" in err
    assert "--device must be" in error_of(capsys, ["sample", "--ckpt", ckpt, "--device", "gpu0", "--out", out])
    err = error_of(capsys, ["sample", "--ckpt", ckpt, "--labels", "99", "--out", out])
    assert "--labels must lie in [0, 8]" in err
    err = error_of(capsys, ["sample", "--ckpt", ckpt, "--num", "3", "--labels", "1", "2", "--out", out])
    assert "one per video (3)" in err
    assert "--threads must be at least 1" in error_of(capsys, ["sample", "--ckpt", ckpt, "--threads", "0", "--out",
                                                                out])
    assert not (tmp_path / "s.gif").exists()


def test_labels_for_an_unconditional_model_are_an_error(tmp_path, capsys):
    run = tmp_path / "uncond"
    assert main(["fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(run), "--max-steps", "1",
                 "--set", "model.categorical=false"]) == 0
    capsys.readouterr()
    err = error_of(capsys, ["sample", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--labels", "3",
                            "--out", str(tmp_path / "s.gif")])
    assert "unconditional mocogan model" in err and "--labels" in err
    assert main(["sample", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--num", "2", "--tile", "0",
                 "--out", str(tmp_path / "s.gif")]) == 0
    with Image.open(tmp_path / "s.gif") as gif:  # --tile 0: original 32-pixel videos, 2 px separators
        assert gif.size == (2 * 32 + 3 * 2, 32 + 2 * 2)


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
    for flag, value, text in (("--batch-size", "0", "train.batch_size = 0 is out of range; valid: a number in [1,"),
                              ("--frames", "1", "data.frames (--frames) must be at least 2"),
                              ("--frames", "0", "data.frames = 0 is out of range; valid: a number in [1,"),
                              ("--max-steps", "0", "train.max_steps = 0 is out of range; valid: a number in [1,"),
                              ("--threads", "0", "--threads must be at least 1")):
        err = error_of(capsys, ["fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(tmp_path / "r"),
                                flag, value])
        assert text in err
    assert not (tmp_path / "r").exists()
    err = error_of(capsys, ["fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(tmp_path / "r"),
                            "--set", "data.num_videos=3", "--batch-size", "4"])
    assert "has 3 training video(s), fewer than one global batch (4 per device x 1 device(s))" in err
    assert "lower --batch-size to 3 or less" in err and not (tmp_path / "r").exists()


def test_weights_fetch_all_tries_every_file(monkeypatch, capsys):
    from zoo.metrics.detectors.weights import WEIGHTS

    monkeypatch.setenv("ZOO_OFFLINE", "1")  # every download fails, as on a node without network
    assert main(["weights", "fetch", "all"]) == 2
    captured = capsys.readouterr()
    assert all(f"{name}: FAILED" in captured.out for name in WEIGHTS if WEIGHTS[name].urls), captured.out
    fetchable = [name for name in WEIGHTS if WEIGHTS[name].urls]  # packaged weights (shapes_net) are not fetched
    assert f"fetched 0 of {len(fetchable)}" in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and "could not fetch" in captured.err


def test_quick_start_leaves_the_suite_hermetic(tmp_path):
    """The suite runs in a private working directory with `ZOO_HOME` set (tests/conftest.py): what the quick start
    leaves in a checkout (`runs/mocogan-shapes` with checkpoints) is neither seen nor touched."""
    from zoo.evaluation import EvalRequest
    from zoo.paths import default_leaderboard, runs_root

    assert not os.path.exists("runs") and os.getcwd() != str(REPO)
    home = os.environ["ZOO_HOME"]
    assert str(runs_root()).startswith(home) and str(default_leaderboard()).startswith(home)
    assert EvalRequest(metrics=["fvd"]).leaderboard == str(default_leaderboard())
    assert main(["fit", "--model", "mocogan", "--config", TINY, "--max-steps", "1"]) == 0
    assert (runs_root() / "mocogan-shapes" / "checkpoints" / "last.ckpt").is_file()
    assert not (REPO / "leaderboard.csv").exists()


def test_default_places_are_outside_the_source_tree(monkeypatch):
    from zoo.paths import default_leaderboard, runs_root

    monkeypatch.delenv("ZOO_HOME")
    assert runs_root() == Path("runs") and default_leaderboard() == Path("runs") / "leaderboard.csv"
    ignored = (REPO / ".gitignore").read_text().split()
    assert "runs/" in ignored and "leaderboard.csv" in ignored and "leaderboard_samples/" in ignored


def test_threads_follow_affinity_cgroup_quota_and_workers(tmp_path, monkeypatch):
    from zoo.errors import ZooError
    from zoo.threads import compute_threads, usable_cores

    affinity = len(os.sched_getaffinity(0))
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert usable_cores(cgroup) == affinity  # no quota file: the affinity mask
    (cgroup / "cpu.max").write_text("max 100000\n")
    assert usable_cores(cgroup) == affinity
    (cgroup / "cpu.max").write_text("50000 100000\n")  # half a CPU still runs one thread
    assert usable_cores(cgroup) == 1
    (cgroup / "cpu.max").write_text("150000 100000\n")
    assert usable_cores(cgroup) == min(affinity, 2)
    assert compute_threads(8, workers=2) == 6 and compute_threads(2, workers=2) == 1
    assert compute_threads(8, workers=1, processes=2) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert compute_threads(None) == 3, "an explicit OMP_NUM_THREADS is the default"
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert compute_threads(None) == max(1, usable_cores())
    with pytest.raises(ZooError, match="--threads must be at least 1"):
        compute_threads(0)
    assert main(["fit", "--model", "mocogan", "--config", TINY, "--threads", "1", "--max-steps", "1",
                 "--run-dir", str(tmp_path / "run")]) == 0
    assert torch.get_num_threads() == 1


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


def test_an_error_closes_the_bars_it_left_open_so_it_starts_on_its_own_line():
    """A loop broken by an error leaves its bar half-drawn, without a newline; the error must not be glued to it."""
    import io

    from tqdm import tqdm

    from zoo.cli import _end_progress_bars

    stream = io.StringIO()
    bar = tqdm(total=4, desc="decoding", file=stream)
    bar.update(1)
    assert not stream.getvalue().endswith("\n")
    _end_progress_bars()
    print("zoo data: error: x", file=stream)
    assert bar not in getattr(tqdm, "_instances", set())
    assert stream.getvalue().splitlines()[-1] == "zoo data: error: x"
