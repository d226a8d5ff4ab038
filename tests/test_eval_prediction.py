"""`zoo eval --task predict` (issue 32): best-of-N by hand, per-step averaging, the held-out split and seed, DDP
invariance (batches seeded by index), the protocol in the rows, the plot, one-line refusals."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from tests.conftest import REPO
from zoo.config import DataConfig, heldout_data_config, resolve_config
from zoo.datasets import build_dataset
from zoo.errors import ZooError
from zoo.evaluation.prediction import PREDICTION_PRESETS, predict_batch, prediction_fingerprint, resolve_protocol
from zoo.evaluation.request import EvalRequest
from zoo.evaluation.run import evaluate
from zoo.metrics.conditional import VideoPSNR
from zoo.metrics.prediction import BestOfN, best_of_n
from zoo.models import load_model
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()
S, N, C, P = 3, 2, 2, 1  # sequences, samples, context, horizon: tiny, 2 batches of 2 (ranks get 2 and 1 sequences)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see tests/conftest.py


@pytest.fixture(scope="module")
def pixel_ckpt(tmp_path_factory):
    """A 1-step tiny PixelCNN on 3-frame 8x8 shapes clips."""
    run_dir = tmp_path_factory.mktemp("pixelcnn")
    config = resolve_config("pixelcnn", "shapes", MODELS.get("pixelcnn").config_class,
                            [REPO / "experiments" / "pixelcnn" / "tiny.yaml"],
                            [f"train.run_dir={run_dir}", "data.frames=3", "train.max_steps=1", "model.val_every=0"])
    fit(config)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def mocogan_ckpt(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mocogan")
    config = resolve_config("mocogan", "shapes", MODELS.get("mocogan").config_class,
                            [REPO / "experiments" / "mocogan" / "tiny.yaml"],
                            [f"train.run_dir={run_dir}", "train.max_steps=1"])
    fit(config)
    return run_dir / "checkpoints" / "last.ckpt"


def _request(ckpt, tmp_path, **changes) -> EvalRequest:
    fields = dict(metrics=["psnr", "ssim"], ckpt=str(ckpt), task="predict", context=C, horizon=P, samples=N,
                  num_samples=S, batch_size=2, seed=3, threads=1, leaderboard=str(tmp_path / "lb.csv"),
                  samples_gif=False)
    return EvalRequest(**{**fields, **changes})


def test_best_of_n_picks_the_sample_with_the_best_mean_by_hand():
    scores = torch.tensor([[[10.0, 30.0], [25.0, 20.0]],  # seq 0: means 20, 22.5 -> sample 1 (per-frame max: 25, 30)
                           [[5.0, 5.0], [1.0, 2.0]]])      # sequence 1: means 5, 1.5 -> sample 0
    assert best_of_n(scores).tolist() == [[25.0, 20.0], [5.0, 5.0]]
    assert best_of_n(scores, higher_is_better=False).tolist() == [[10.0, 30.0], [1.0, 2.0]]  # a distance (LPIPS)
    metric = BestOfN(2)
    metric.update(scores[:1])
    metric.update(scores[1:])  # per step: mean over sequences of the chosen rows
    assert metric.compute().tolist() == [15.0, 12.5]


def test_protocol_resolution_and_presets():
    bair = resolve_protocol(EvalRequest(metrics=["psnr"], preset="bair_c2p28"), "folder")
    assert (bair.context, bair.horizon, bair.samples, bair.sequences) == (2, 28, 100, 256)
    assert bair.name == "c2p28_n100" and "generate_svg_lp.py" in bair.source
    assert resolve_protocol(EvalRequest(metrics=["psnr"]), "shapes") == dataclasses.replace(
        PREDICTION_PRESETS["shapes_c2p6"], name="c2p6_n4")
    with pytest.raises(ZooError, match="give --context"):
        resolve_protocol(EvalRequest(metrics=["psnr"]), "folder")


def test_scores_are_best_of_n_of_the_heldout_sequences(pixel_ckpt, tmp_path):
    results = evaluate(_request(pixel_ckpt, tmp_path))
    model = load_model(pixel_ckpt)
    trained = DataConfig(**model.experiment["data"])
    config = heldout_data_config(dataclasses.replace(trained, frames=C + P, frame_stride=1))
    assert (config.split, config.seed) == ("test", trained.seed + 1)
    dataset = build_dataset(config.name, config)
    real = torch.stack([dataset.raw_item(i)["pixels"] for i in range(S)])
    fake = torch.cat([predict_batch(model, real[i : i + 2], C, P, N, 3, i // 2, torch.device("cpu"))
                      for i in range(0, S, 2)])  # [S, N, C + P, H, W, 3]
    assert torch.equal(fake[:, :, :C], real[:, None, :C].expand(-1, N, -1, -1, -1, -1))  # the context as given
    scores = VideoPSNR.frame_scores(fake[:, :, C:].flatten(0, 1), real[:, C:].repeat_interleave(N, 0))
    by_hand = best_of_n(scores.reshape(S, N, P)).mean(0)
    psnr = next(r for r in results if r.metric == "psnr")
    assert psnr.values["psnr_per_step"] == pytest.approx(by_hand.tolist())
    assert psnr.values["psnr"] == pytest.approx(float(by_hand.mean()))
    assert psnr.preset.name == f"psnr_c{C}p{P}_n{N}" and (psnr.num_real, psnr.num_fake) == (S, S * N)
    rows = list(csv.DictReader(open(tmp_path / "lb.csv")))
    extra = json.loads(rows[0]["extra"])
    assert (extra["context"], extra["horizon"], extra["samples_per_sequence"], extra["sequences"]) == (C, P, N, S)
    assert (extra["heldout_split"], extra["heldout_seed"]) == ("test", trained.seed + 1)
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"]
    protocol = resolve_protocol(_request(pixel_ckpt, tmp_path), "shapes")
    assert prediction_fingerprint(protocol, config) == psnr.fingerprint
    for change in ({"samples": N + 1}, {"context": C + 1}, {"sequences": S + 1}):  # each enters the fingerprint
        assert prediction_fingerprint(dataclasses.replace(protocol, **change), config) != psnr.fingerprint


def test_two_ranks_give_the_one_process_scores(pixel_ckpt, tmp_path):
    """Batch b -> rank b % world, seeded by b: rank 0 scores batch 0 (2 sequences), rank 1 batch 1 (1 sequence), and
    their sequence-weighted per-step means are one process's. In-process ranks: without a process group the
    metrics' sync is a no-op, so each returns its local value."""
    from zoo.evaluation.prediction import score_prediction
    from zoo.evaluation.validate import load_run

    request = _request(pixel_ckpt, tmp_path, metrics=["psnr"], leaderboard=None)
    model, run = load_run(request)
    model.eval()
    cpu = torch.device("cpu")
    whole = score_prediction(request, model, run, 0, 1, cpu)[0].values["psnr_per_step"]
    ranks = [score_prediction(request, model, run, rank, 2, cpu)[0].values["psnr_per_step"] for rank in (0, 1)]
    merged = [(2 * a + 1 * b) / 3 for a, b in zip(*ranks)]
    assert merged == pytest.approx(whole)
    assert ranks[0] != pytest.approx(ranks[1])  # the ranks really scored different sequences


def test_plot_writes_a_png(pixel_ckpt, tmp_path):
    evaluate(_request(pixel_ckpt, tmp_path, plot=str(tmp_path / "steps.png")))
    assert (tmp_path / "steps.png").read_bytes()[:4] == b"\x89PNG"


def test_refusals_are_one_line(pixel_ckpt, mocogan_ckpt, tmp_path):
    mocogan, pixel = load_model(mocogan_ckpt), load_model(pixel_ckpt)
    assert pixel.can_predict and not mocogan.can_predict
    with pytest.raises(ZooError, match=r"^mocogan cannot continue a clip \(it has no video-prediction path\)"):
        mocogan.predict(torch.zeros(1, 3, 2, 8, 8), 1)
    with pytest.raises(ZooError, match="mocogan cannot continue a clip"):
        evaluate(_request(mocogan_ckpt, tmp_path))
    with pytest.raises(ZooError, match="--horizon must be at least 1"):
        evaluate(_request(pixel_ckpt, tmp_path, horizon=0))
    with pytest.raises(ZooError, match="--task predict scores"):
        evaluate(_request(pixel_ckpt, tmp_path, metrics=["is"]))
    with pytest.raises(ZooError, match="is a video-prediction protocol: add --task predict"):
        evaluate(EvalRequest(metrics=["fvd_shapes"], ckpt=str(pixel_ckpt), preset="bair_c2p28", leaderboard=None))
    with pytest.raises(ZooError, match="belongs to --task predict"):
        evaluate(_request(pixel_ckpt, tmp_path, task="generate", metrics=["fvd_shapes"]))


def test_the_command_line_runs_the_task_and_refuses_in_one_line(pixel_ckpt, mocogan_ckpt, tmp_path, capsys):
    from zoo.cli import main

    common = ["eval", "--task", "predict", "--context", str(C), "--horizon", str(P), "--samples", str(N),
              "--num-samples", str(S), "--batch-size", "2", "--threads", "1", "--metric", "psnr", "--no-leaderboard"]
    assert main([*common, "--ckpt", str(pixel_ckpt)]) == 0
    assert f"psnr_c{C}p{P}_n{N}" in capsys.readouterr().out
    assert main([*common, "--ckpt", str(mocogan_ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mocogan cannot continue a clip" in err[0]


def test_feature_metrics_score_all_predicted_clips(tmp_path):
    """fvd_shapes over the S * N predicted clips (context + future: 2 + 6 = shapes_net's 8 frames) vs the S real."""
    run_dir = tmp_path / "vd"
    config = resolve_config("video_diffusion", "shapes", MODELS.get("video_diffusion").config_class,
                            [REPO / "experiments" / "video_diffusion" / "tiny.yaml"],
                            [f"train.run_dir={run_dir}", "data.frames=4", "data.resolution=8", "train.max_steps=1"])
    fit(config)
    request = _request(run_dir / "checkpoints" / "last.ckpt", tmp_path, metrics=["psnr", "fvd_shapes"], horizon=6,
                       leaderboard=None)
    psnr, fvd = evaluate(request)
    assert fvd.preset.name == f"fvd_shapes_c{C}p6_n{N}" and fvd.preset.frames == C + 6
    assert (fvd.num_real, fvd.num_fake) == (S, S * N) and fvd.values["fvd"] >= 0
    assert len(psnr.values["psnr_per_step"]) == 6 and fvd.fingerprint == psnr.fingerprint


def test_lpips_frame_scores_feed_a_lower_is_better_best_of_n(monkeypatch):
    """No torchvision here: a stand-in network (mean absolute difference per frame) checks the plumbing -- per-frame
    scores [B, T] whose clip mean is what `update` adds, and the best of N as the lowest mean."""
    from zoo.metrics import lpips

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, a, b):
            return (a - b).abs().mean((1, 2, 3))

    monkeypatch.setattr(lpips, "load_lpips", lambda net="alex", weights=None: Stub())
    metric = lpips.VideoLPIPS()
    fake = torch.zeros(2, 4, 8, 8, 3, dtype=torch.uint8)  # [B, T, H, W, C]
    real = fake.clone()
    real[1, 2] = 255
    scores = metric.frame_scores(fake, real)
    assert scores.shape == (2, 4) and scores[0].eq(0).all() and scores[1, 2] > 0 and scores[1, 2:3].ne(0).all()
    metric.update(fake, real)
    assert float(metric.compute()) == pytest.approx(float(scores.mean(1).mean()))
    best = BestOfN(4, higher_is_better=metric.higher_is_better)
    best.update(scores.unsqueeze(0))  # one sequence, two samples: the lower-distance one (sample 0) is its best
    assert best.compute().tolist() == [0.0] * 4


@pytest.mark.slow  # ~25 s of process start-up on 2 cores: outside the default suite's 60 s for this task
def test_two_gloo_ranks_give_the_one_process_rows(pixel_ckpt, tmp_path):
    """Real DDP: `--devices 2` (gloo, spawned) returns the one-process per-step values (the default suite checks the
    same with two in-process ranks)."""
    one = evaluate(_request(pixel_ckpt, tmp_path, metrics=["psnr"], leaderboard=None))[0]
    two = evaluate(_request(pixel_ckpt, tmp_path, metrics=["psnr"], leaderboard=None, devices=2))[0]
    assert two.values["psnr_per_step"] == pytest.approx(one.values["psnr_per_step"])
    assert (two.num_real, two.num_fake, two.fingerprint) == (one.num_real, one.num_fake, one.fingerprint)


def test_plot_takes_other_models_rows_of_the_same_protocol_only():
    from zoo.evaluation.prediction_plot import leaderboard_curves

    def row(model, fingerprint, steps, metric="psnr"):
        return {"model": model, "fingerprint": fingerprint, "metric": metric,
                "extra": json.dumps({f"{metric}_per_step": steps})}

    rows = [row("a", "f1", [1.0, 2.0]), row("b", "f2", [9.0, 9.0]), row("a", "f1", [3.0, 4.0]),
            row("c", "f1", [0.5, 0.6], "ssim"), row("d", "f1", [7.0], "fvd")]
    assert leaderboard_curves(rows, "f1") == {"a": {"psnr": [3.0, 4.0]}, "c": {"ssim": [0.5, 0.6]}}  # newest row
