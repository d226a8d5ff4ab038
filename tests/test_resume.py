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
