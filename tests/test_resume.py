"""Training N steps straight and N/2 + resume + N/2 gives the same weights, bit for bit."""

import pytest
import torch

from tests.conftest import REPO
from zoo.config import resolve_config
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()
# models whose tiny config trains on its own (the VideoGPT prior needs a stage-1 checkpoint first)
RESUMABLE = [k for k in ("mocogan", "video_diffusion", "videogpt_vqvae") if k in MODELS]


def config(model: str, run_dir, steps: int):
    tiny = REPO / "experiments" / model / "tiny.yaml"
    sets = [f"train.run_dir={run_dir}", f"train.max_steps={steps}", "train.checkpoint_every=1000",
            "train.sample_every=0", "data.num_videos=20", "train.batch_size=4", "data.num_workers=1"]
    return resolve_config(model, "shapes", MODELS.get(model).config_class, [tiny], sets)


@pytest.mark.parametrize("model", RESUMABLE)
def test_resume_is_exact(model, tmp_path):
    # 20 videos / batch 4 = 5 steps per epoch: the interruption lands mid-epoch and the run crosses an epoch
    straight = fit(config(model, tmp_path / "straight", 8)).model
    fit(config(model, tmp_path / "resumed", 3))
    resumed = fit(config(model, tmp_path / "resumed", 8), resume=True).model
    assert straight.iteration == resumed.iteration == 8
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between straight and resumed training"
    # and the resumed run really continued (it did not start over and did not skip steps)
    fresh = fit(config(model, tmp_path / "short", 3)).model
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), resumed.state_dict().values()))


def test_resume_continues_the_logged_curve(tmp_path):
    fit(config("mocogan", tmp_path / "a", 6))
    fit(config("mocogan", tmp_path / "b", 3))
    fit(config("mocogan", tmp_path / "b", 6), resume=True)
    straight = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    resumed = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert resumed == straight, "the resumed run's metrics.csv must hold the whole curve, identical to the straight run"


# -- run files survive crashes and mistakes -------------------------------------------------------------------------

import dataclasses  # noqa: E402
import logging  # noqa: E402

from zoo.errors import ZooError  # noqa: E402


def snapshot(run_dir) -> dict:
    """Every file of a run directory with its bytes and modification time."""
    return {str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
    """A finished 3-step mocogan run."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    fit(config("mocogan", run_dir, 3))
    return run_dir


def copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_resume_that_changes_the_architecture_is_refused_before_writing(three_steps, tmp_path):
    run_dir = copy_run(three_steps, tmp_path / "run")
    before = snapshot(run_dir)
    wider = config("mocogan", run_dir, 6)
    wider = dataclasses.replace(wider, model=dataclasses.replace(wider.model, ngf=wider.model.ngf * 2))
    with pytest.raises(ZooError, match=r"--resume: the config differs in model\.ngf \(8 in the run, 16 now\), which "
                                       r"changes the architecture .*different shapes") as e:
        fit(wider, resume=True)
    assert "\n" not in str(e.value)
    assert snapshot(run_dir) == before, "a refused resume must not touch the run"
    other_lr = config("mocogan", run_dir, 4)  # a training-only change keeps the architecture: allowed
    other_lr = dataclasses.replace(other_lr, model=dataclasses.replace(other_lr.model, lr=1e-4))
    assert fit(other_lr, resume=True).model.iteration == 4
    assert "lr: 0.0001" in (run_dir / "config.yaml").read_text()


def test_failed_resume_never_rewrites_config_yaml(three_steps, tmp_path):
    run_dir = copy_run(three_steps, tmp_path / "run")
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated by a crash of some copy tool
    before = snapshot(run_dir)
    with pytest.raises(ZooError, match="truncated or corrupt"):
        fit(config("mocogan", run_dir, 6), resume=True)
    assert snapshot(run_dir) == before


def test_resume_at_or_past_max_steps_trains_nothing_and_says_so(three_steps, tmp_path, capsys):
    run_dir = copy_run(three_steps, tmp_path / "run")
    before = snapshot(run_dir)
    for steps in (3, 2):
        result = fit(config("mocogan", run_dir, steps), resume=True)
        assert result.model.iteration == 3
        assert "is at step 3 and --max-steps is" in capsys.readouterr().err
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("leftover", ["config.yaml", "metrics.csv"])
def test_run_dir_holding_another_runs_files_is_refused(three_steps, tmp_path, leftover):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / leftover).write_bytes((three_steps / leftover).read_bytes())
    before = snapshot(run_dir)
    with pytest.raises(ZooError, match=rf"already holds another run's {leftover} \(no checkpoint"):
        fit(config("mocogan", run_dir, 2))
    assert snapshot(run_dir) == before


def test_truncated_last_metrics_line_is_dropped_with_a_warning(three_steps, tmp_path, caplog):
    run_dir = copy_run(three_steps, tmp_path / "run")
    metrics = run_dir / "metrics.csv"
    lines = metrics.read_text().splitlines(keepends=True)
    assert len(lines) == 4  # header + steps 0, 1, 2
    metrics.write_text("".join(lines) + lines[-1][:7])  # a killed writer left half a row, no newline
    with caplog.at_level(logging.WARNING, logger="zoo.csv_log"):
        fit(config("mocogan", run_dir, 4), resume=True)
    assert any("incomplete last line" in r.getMessage() for r in caplog.records)
    resumed = metrics.read_text().splitlines(keepends=True)
    assert resumed[:4] == lines and len(resumed) == 5, "complete rows kept, the cut one dropped, step 3 added"
    assert resumed[4].startswith("0,3,")
