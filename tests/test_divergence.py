"""A run whose losses or weights become NaN / infinite stops at that step with one line, writes no checkpoint of that
state, and keeps the last finite checkpoint as the one `--resume` uses."""

import dataclasses
import math
import warnings

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from tests.conftest import REPO
from zoo.cli import main
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.models.base import read_checkpoint
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()


def config(model: str, run_dir, steps: int, every: int = 2, sets=()):
    tiny = REPO / "experiments" / model / "tiny.yaml"
    sets = [f"train.run_dir={run_dir}", f"train.max_steps={steps}", f"train.checkpoint_every={every}",
            "train.sample_every=0", "data.num_videos=16", "train.batch_size=4", "data.num_workers=0",
            "train.accelerator=cpu", *sets]
    return resolve_config(model, "shapes", MODELS.get(model).config_class, [tiny], sets)


def all_finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if torch.is_tensor(t) and t.is_floating_point())


class PoisonWeights(Callback):
    """Fault injection: before step `at` (1-based) one trainable weight becomes NaN, as a bad update would leave it."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.iteration + 1 == self.at:
            with torch.no_grad():
                next(p for p in pl_module.parameters() if p.requires_grad).fill_(math.nan)


class PoisonGradients(Callback):
    """Fault injection: at step `at` the gradients become NaN after the (finite) loss was computed."""

    def __init__(self, at: int):
        self.at = at

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if pl_module.iteration + 1 == self.at:
            for p in pl_module.parameters():
                if p.grad is not None:
                    p.grad.fill_(math.nan)


def test_eps_below_float32_diverges_at_the_first_nan_loss_and_writes_no_checkpoint(tmp_path):
    # the case, with the config check bypassed: Adam eps 1e-50 is 0 in float32, 0 / 0 at the first update.
    # TGANv2 updates G and D simultaneously (both losses from the step's starting weights, as its Chainer updater
    # does), so step 1's losses are finite and the NaN its update wrote shows in step 2's, a checkpoint step
    run_dir = tmp_path / "run"
    cfg = config("tgan2", run_dir, 4, every=2)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, eps=1e-50))
    with pytest.raises(ZooError, match=r"^training diverged at step 2: train/g_loss = nan; stopped without writing "
                                               r"a checkpoint of this state: no checkpoint was written\. ") as e:
        fit(cfg)
    assert "\n" not in str(e.value)
    assert not list(run_dir.rglob("*.ckpt")), "the step-2 checkpoint would have held NaN weights"
    assert (run_dir / "config.yaml").is_file(), "step 1 trained: the run's files stay, to show what happened"
    from tqdm import tqdm

    open_bars = [bar for bar in getattr(tqdm, "_instances", ()) if str(bar.desc).startswith("steps")]
    assert not open_bars, "the run's bar was closed"


def test_divergence_keeps_the_last_finite_checkpoint_for_resume(tmp_path):
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    with pytest.raises(ZooError, match=r"^training diverged at step 3: train/\S+ = nan; .*last\.ckpt \(step 2\) "
                                               r"is the last finite checkpoint; `zoo fit --resume` continues from it"):
        fit(config("mocogan", run_dir, 6), extra_callbacks=[PoisonWeights(at=3)])
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt", "step=0000002.ckpt"]
    last = read_checkpoint(checkpoints / "last.ckpt")
    assert last["zoo"]["iteration"] == 2 and all_finite(last["state_dict"])
    assert (checkpoints / "last.ckpt").read_bytes() == (checkpoints / "step=0000002.ckpt").read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit(config("mocogan", run_dir, 4), resume=True).model  # the run goes on from the finite state
    assert resumed.iteration == 4 and all_finite(resumed.state_dict())
    # mid-epoch (16 videos, batch 4): the sampler resumes exactly, so Lightning's "not resumable" alarm is noise
    assert not [w for w in caught if "dataloader is not resumable" in str(w.message)]


def test_nan_weights_behind_a_finite_loss_are_never_checkpointed(tmp_path):
    # automatic optimization: step 2's loss is finite, its update (NaN gradients) is not; step 2 is a checkpoint step
    run_dir = tmp_path / "run"
    with pytest.raises(ZooError, match=r"^training diverged at step 2: the weights \S+ are not finite; .*no "
                                               r"checkpoint was written"):
        fit(config("video_diffusion", run_dir, 4), extra_callbacks=[PoisonGradients(at=2)])
    assert not list((run_dir / "checkpoints").glob("*.ckpt"))
    assert (run_dir / "config.yaml").is_file(), "step 1 trained: the run's files stay, to show what happened"


def test_a_learning_rate_float32_cannot_hold_is_refused_in_one_line(tmp_path, capsys):
    tiny = str(REPO / "experiments" / "mocogan" / "tiny.yaml")
    code = main(["fit", "--model", "mocogan", "--config", tiny, "--run-dir", str(tmp_path / "run"), "--max-steps", "3",
                 "--accelerator", "cpu", "--set", "model.lr=1e-39"])  # refused up front: not a float32 number
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model.lr = 1e-39 is beyond what a float32" in err[0]
    assert not (tmp_path / "run").exists()
