"""What `zoo fit` leaves in (and refuses as) a run directory, and where `zoo weights train` writes."""

import dataclasses
import hashlib
import subprocess
import sys

import pytest

from tests.conftest import REPO
from zoo.cli import main
from zoo.config import resolve_config
from zoo.metrics.detectors import shapes_net
from zoo.metrics.detectors.weights import WEIGHTS
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()


def config(model: str, run_dir, steps: int, *sets: str):
    tiny = REPO / "experiments" / model / "tiny.yaml"
    sets = [f"train.run_dir={run_dir}", f"train.max_steps={steps}", "train.checkpoint_every=2", "train.sample_every=0",
            "data.num_videos=8", "train.batch_size=4", "train.accelerator=cpu", *sets]
    return resolve_config(model, "shapes", MODELS.get(model).config_class, [tiny], sets)


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_run_dir_that_is_a_file_is_one_line(tmp_path, capsys, where):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    run_dir = blocker if where == "file" else blocker / "run"
    tiny = str(REPO / "experiments" / "mocogan" / "tiny.yaml")
    assert main(["fit", "--model", "mocogan", "--config", tiny, "--run-dir", str(run_dir), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{blocker} is a file" in err[0], err
    assert blocker.read_text() == "mine"


def crashing_first_step(run_dir):
    """A config that passes as built (even kernels set behind validation's back) and crashes in step 1's forward."""
    cfg = config("gated_pixelcnn", run_dir, 2)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, first_kernel=4))


def test_a_crash_in_the_first_step_leaves_no_files_that_block_a_retry(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError):
        fit(crashing_first_step(run_dir))
    assert not run_dir.exists(), "config.yaml / metrics.csv of a run that never trained must not be left"
    assert fit(config("gated_pixelcnn", run_dir, 2)).model.iteration == 2  # the same folder, fixed settings


def test_a_failed_first_step_removes_only_what_it_wrote(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "README").write_text("the user's")
    with pytest.raises(RuntimeError):
        fit(crashing_first_step(run_dir))
    assert [p.name for p in run_dir.iterdir()] == ["README"]


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_temp_files_of_a_killed_save_are_removed_at_the_next_start(tmp_path, capsys):
    run_dir = tmp_path / "run"
    fit(config("mocogan", run_dir, 2))
    checkpoints = run_dir / "checkpoints"
    pid = dead_pid()
    stale = [checkpoints / f".step=0000004.ckpt.{pid}.tmp", checkpoints / f".last.ckpt.{pid}.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)  # what a SIGKILL in the middle of torch.save leaves
    kept = [checkpoints / ".last.ckpt.1.tmp",  # pid 1 is alive: a save in progress
            checkpoints / "notes.tmp", run_dir / f".step=0000004.ckpt.{pid}.tmp"]  # not ours / not the folder
    for path in kept:
        path.write_bytes(b"y")
    capsys.readouterr()
    assert fit(config("mocogan", run_dir, 3), resume=True).model.iteration == 3
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"y" for path in kept)
    assert f"removed 2 temporary file(s) (0.0 MB) that an interrupted checkpoint save left in {checkpoints}" in \
        capsys.readouterr().err


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_weights_train_writes_the_cache_not_the_packaged_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    packaged = shapes_net.WEIGHTS_FILE
    assert sha256(packaged) == WEIGHTS["shapes_net"].sha256
    assert main(["weights", "train", "shapes_net", "--steps", "1", "--heldout", "50"]) == 0
    assert sha256(packaged) == WEIGHTS["shapes_net"].sha256, "the packaged detector must stay as shipped"
    written = tmp_path / "cache" / "weights" / "shapes_net.pt"
    shapes_net.load_shapes_net(written)  # a real state dict of the detector
    out = capsys.readouterr().out
    assert f"wrote {written} (SHA-256 {sha256(written)}); the packaged weights are unchanged" in out
    assert f"--detector-weights {written}" in out


def test_weights_train_install_replaces_the_packaged_file_only_when_asked(tmp_path, monkeypatch, capsys):
    installed = tmp_path / "package" / "shapes_net.pt"  # stands in for the installation's file
    monkeypatch.setattr(shapes_net, "WEIGHTS_FILE", installed)
    assert main(["weights", "train", "shapes_net", "--steps", "1", "--heldout", "50", "--install"]) == 0
    out = capsys.readouterr().out
    assert f"installed {installed} over the packaged shapes_net weights: SHA-256 {sha256(installed)}" in out
    assert "differs from the pinned" in out, "a 1-step retrain cannot reproduce the pinned file"
