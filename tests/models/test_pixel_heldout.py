"""The pixel family's held-out bits/dim is scored on videos the model never trained on: the training callback's
`val/bpd` on the test split with the next data seed, `zoo eval --metric bpd` on the test split."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

import zoo.datasets
import zoo.datasets.datamodule
import zoo.errors
from tests.conftest import REPO
from zoo.config import resolve_config
from zoo.datasets import build_dataset
from zoo.datasets.cliplist import make_clip_list
from zoo.registry import MODELS, load_all
from zoo.training import fit
from zoo.video_io import from_uint8

load_all()


def recorder(seen: list):
    """`build_dataset` that records the data configs it is given (the real builder runs)."""

    def recording(name, config=None, **kwargs):
        seen.append(config)
        return build_dataset(name, config, **kwargs)

    return recording


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """pixelcnn (tiny.yaml) on shapes, 1 step, held-out bits/dim after it on 4 clips; (config, fit result, the data
    configs the data module built datasets from)."""
    run_dir = tmp_path_factory.mktemp("pixel-heldout")
    sets = [f"train.run_dir={run_dir}", "train.max_steps=1", "train.checkpoint_every=1", "model.val_every=1",
            "model.val_clips=4", "data.num_videos=8", "train.batch_size=4", "data.seed=3"]
    config = resolve_config("pixelcnn", "shapes", MODELS.get("pixelcnn").config_class,
                            [REPO / "experiments/pixelcnn/tiny.yaml"], sets)
    built: list = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo.datasets.datamodule, "build_dataset", recorder(built))
        return config, fit(config), built


def mean_bits_per_dim(model, data_config, clips: int) -> float:
    """The model's bits/dim averaged over the first `clips` clips of the list drawn with the config's own seed."""
    dataset = build_dataset(data_config.name, data_config)
    chosen = make_clip_list(dataset, clips, data_config.seed).clips[:clips]
    videos = torch.stack([from_uint8(dataset.pixels_at(v, start)) for v, start in chosen])
    with torch.no_grad():
        return model.eval().bits_per_dim(videos).mean().item()


def test_training_val_bpd_is_scored_on_the_test_split_with_the_next_seed(trained):
    config, result, built = trained
    assert {(c.split, c.seed) for c in built} == {("train", 3), ("test", 4)}, "training: seed 3; held out: test, 4"
    rows = [r for r in csv.DictReader(open(result.run_dir / "metrics.csv")) if r.get("val/bpd")]
    logged = float(rows[0]["val/bpd"])
    held_out = dataclasses.replace(config.data, split="test", seed=config.data.seed + 1)
    assert mean_bits_per_dim(result.model, held_out, 4) == pytest.approx(logged, rel=1e-5)
    on_training_videos = mean_bits_per_dim(result.model, dataclasses.replace(config.data, split="test"), 4)
    assert on_training_videos != pytest.approx(logged, rel=1e-5), "the seed must change the scored clips"


@pytest.fixture
def built_data_configs(monkeypatch) -> list:
    seen: list = []
    monkeypatch.setattr(zoo.datasets, "build_dataset", recorder(seen))
    return seen


def scored_bpd_config(trained, built_data_configs):
    from zoo.evaluation import EvalRequest, evaluate

    _, result, _ = trained
    ckpt = str(result.run_dir / "checkpoints" / "last.ckpt")
    evaluate(EvalRequest(metrics=["bpd"], ckpt=ckpt, num_real=4, batch_size=4, leaderboard=None))
    return built_data_configs[-1]  # the scoring pass comes after the up-front checks


def test_zoo_eval_bpd_scores_the_test_split(trained, built_data_configs):
    config, _, _ = trained
    scored = scored_bpd_config(trained, built_data_configs)
    assert scored.split == "test" and scored.name == "shapes"
    assert (scored.frames, scored.resolution) == (config.data.frames, config.data.resolution)


def test_zoo_eval_bpd_on_shapes_scores_no_training_video(trained, built_data_configs):
    config, _, _ = trained
    scored = scored_bpd_config(trained, built_data_configs)
    training = build_dataset(config.data.name, config.data)
    dataset = build_dataset(scored.name, scored)
    clips = make_clip_list(dataset, 4, scored.seed).clips[:4]
    assert not any(torch.equal(dataset.pixels_at(v, s), training.pixels_at(v, s)) for v, s in clips if
                   v < len(training)), "a scored clip is a clip of a training video"


def test_zoo_eval_bpd_checks_the_real_data_at_the_models_clip_length(tmp_path):
    """A 2-frame pixel model trained on 6-frame videos is scored on those videos' test clips of 2 frames."""
    from tests.datasets.media import write
    from zoo.evaluation import EvalRequest, evaluate

    for i in range(4):
        write(tmp_path / "v" / "a" / f"x{i}.avi", n=6, height=16, width=16, seed=i)
    sets = [f"train.run_dir={tmp_path / 'run'}", "train.max_steps=1", "train.checkpoint_every=1", "model.val_every=0",
            f"data.root={tmp_path / 'v'}", f"data.index_cache={tmp_path / 'cache'}", "train.batch_size=2"]
    config = resolve_config("pixelcnn", "folder", MODELS.get("pixelcnn").config_class,
                            [REPO / "experiments/pixelcnn/tiny.yaml"], sets)
    result = fit(config)
    (row,) = evaluate(EvalRequest(metrics=["bpd"], ckpt=str(result.run_dir / "checkpoints" / "last.ckpt"), num_real=4,
                                  batch_size=2, leaderboard=None))
    assert row.num_real == 4 and 0 < row.values["bpd"] < 12
