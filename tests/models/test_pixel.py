"""The pixel-autoregressive family: the model contract per variant, cached == uncached sampling, the likelihood
(bits/dim) and its harness hook, class conditioning, exact resume and 2-process DDP. Causality: test_pixel_causality.py.
"""

from __future__ import annotations

import csv
import dataclasses
import math

import pytest
import torch

from tests.conftest import REPO
from tests.models.contract import ModelContract
from tests.models.ddp import assert_identical_ranks, run_ddp_fit
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.models.base import VideoSpec
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()
SPEC = VideoSpec(3, 2, 6, 0)  # 2 frames of 6x6 RGB
KEYS = ("pixelcnn", "gated_pixelcnn", "row_lstm", "diagonal_bilstm")


class PixelContract(ModelContract):
    def check_forward(self, model, batch):
        b, c, t, h, w = batch["video"].shape
        logits = model(batch["video"], batch["label"])
        assert logits.shape == (b, 256, c, t, h, w)
        bpd = model.bits_per_dim(batch["video"], batch["label"])
        assert bpd.shape == (b,) and torch.isfinite(bpd).all()


class TestPixelCNN(PixelContract):
    model_key = "pixelcnn"


class TestGatedPixelCNN(PixelContract):
    model_key = "gated_pixelcnn"


class TestRowLSTM(PixelContract):
    model_key = "row_lstm"


class TestDiagonalBiLSTM(PixelContract):
    model_key = "diagonal_bilstm"


def tiny(key: str, spec: VideoSpec = SPEC, **changes):
    cls = MODELS.get(key)
    fields = dict(hidden=6, layers=2, first_kernel=3, out_hidden=12, context_width=6, context_blocks=1)
    torch.manual_seed(0)
    return cls(cls.config_class(**{**fields, **changes}), spec)


def randomize(model, scale: float = 3.0):
    """Sharper-than-initial weights, so that samples are far from uniform noise and sampling paths really differ
    when they compute different logits."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


@pytest.mark.parametrize("key", KEYS)
def test_step_logits_equal_forward_logits(key):
    """The sampling cache computes, position by position, exactly what the full forward pass computes."""
    model = randomize(tiny(key)).eval()
    canvas = torch.rand(2, 3, 6, 6) * 2 - 1
    cond = torch.randn(2, 6, 6, 6)
    with torch.no_grad():
        full = model.decoder(canvas, cond)  # (2, 768, H, W)
        cache = model.decoder.begin(cond)
        for y in range(6):
            for x in range(6):
                torch.testing.assert_close(model.decoder.step(cache, canvas, y, x), full[:, :, y, x], rtol=1e-5,
                                           atol=1e-5, msg=f"{key} at ({y}, {x})")
            model.decoder.end_row(cache, canvas, y)


@pytest.mark.parametrize("key,context", [(k, "convlstm") for k in KEYS] + [("gated_pixelcnn", "conv3d")])
def test_cached_sampling_draws_exactly_the_uncached_samples(key, context):
    model = randomize(tiny(key, context=context))
    cached = model.sample(2, generator=torch.Generator().manual_seed(3))
    uncached = model.sample(2, generator=torch.Generator().manual_seed(3), cached=False)
    assert torch.equal(cached, uncached)
    assert cached.unique().numel() > 8, "samples must not be constant"


def test_uniform_logits_score_exactly_8_bits_per_dim():
    model = tiny("gated_pixelcnn")
    with torch.no_grad():
        model.decoder.head.logits.weight.zero_()
        model.decoder.head.logits.bias.zero_()
    videos = torch.rand(3, 3, 2, 6, 6) * 2 - 1
    bpd = model.bits_per_dim(videos)
    torch.testing.assert_close(bpd, torch.full((3,), 8.0), rtol=0, atol=1e-5)


def test_bits_per_dim_is_the_mean_negative_log2_likelihood_of_the_levels():
    """Computed here from the logits by hand: -log2 softmax at each sub-pixel's 8-bit level, averaged."""
    model = randomize(tiny("row_lstm"))
    videos = torch.rand(2, 3, 2, 6, 6) * 2 - 1
    levels = torch.floor(videos * 127.5 + 128).clamp(0, 255).long()
    with torch.no_grad():
        log_p = torch.log_softmax(model(videos), dim=1)  # (B, 256, C, T, H, W)
        want = -log_p.gather(1, levels[:, None])[:, 0].flatten(1).mean(1) / math.log(2)
        torch.testing.assert_close(model.bits_per_dim(videos), want)


def test_class_conditional_output_depends_on_the_label():
    model = randomize(tiny("gated_pixelcnn", spec=VideoSpec(3, 2, 6, 9), class_conditional=True))
    videos = torch.rand(1, 3, 2, 6, 6) * 2 - 1
    with torch.no_grad():
        a, b = model(videos, torch.tensor([0])), model(videos, torch.tensor([5]))
    assert not torch.allclose(a, b)
    s0 = model.sample(2, labels=torch.tensor([0, 0]), generator=torch.Generator().manual_seed(0))
    s5 = model.sample(2, labels=torch.tensor([5, 5]), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(s0, s5)
    with pytest.raises(ZooError, match="labels"):
        model.bits_per_dim(videos)


def test_unconditional_model_ignores_labels_and_conditional_needs_labelled_data():
    model = tiny("pixelcnn", spec=VideoSpec(3, 2, 6, 9))
    videos = torch.rand(1, 3, 2, 6, 6) * 2 - 1
    torch.testing.assert_close(model(videos, torch.tensor([0])), model(videos, torch.tensor([4])))
    with pytest.raises(ValueError, match="labelled"):
        tiny("pixelcnn", class_conditional=True)


def test_bad_sizes_and_context_are_rejected():
    with pytest.raises(ValueError, match="one feature block per colour"):
        tiny("row_lstm", hidden=2)
    with pytest.raises(ValueError, match="convlstm"):
        tiny("row_lstm", context="lstm")


def test_any_number_of_frames_can_be_sampled():
    model = tiny("diagonal_bilstm", spec=VideoSpec(3, 2, 4, 0))
    long = model.sample(1, frames=3, generator=torch.Generator().manual_seed(0))
    short = model.sample(1, frames=2, generator=torch.Generator().manual_seed(0))
    assert long.shape[2] == 3
    torch.testing.assert_close(long[:, :, :2], short, rtol=0, atol=0)  # causal: a longer video extends a shorter


# -- training: held-out bits/dim, resume, DDP, the harness ---------------------------------------------------------


def run_config(key: str, run_dir, steps: int, *sets: str):
    tiny_yaml = REPO / "experiments" / key / "tiny.yaml"
    base = [f"train.run_dir={run_dir}", f"train.max_steps={steps}", "train.checkpoint_every=1000",
            "train.sample_every=0", "data.num_videos=20", "train.batch_size=4"]
    return resolve_config(key, "shapes", MODELS.get(key).config_class, [tiny_yaml], base + list(sets))


def test_train_and_held_out_bits_per_dim_are_logged(tmp_path):
    fit(run_config("pixelcnn", tmp_path, 4))
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    train = [float(r["train/bpd"]) for r in rows if r.get("train/bpd")]
    val = [(int(r["step"]), float(r["val/bpd"])) for r in rows if r.get("val/bpd")]
    assert len(train) == 4 and all(0 < v < 12 for v in train)
    assert [s for s, _ in val] == [1, 3], "val/bpd every 2 steps (tiny.yaml), at the step that triggered it"


@pytest.mark.parametrize("key", ["gated_pixelcnn", "diagonal_bilstm"])
def test_resume_is_exact(key, tmp_path):
    straight = fit(run_config(key, tmp_path / "straight", 6)).model
    fit(run_config(key, tmp_path / "resumed", 3))
    resumed = fit(run_config(key, tmp_path / "resumed", 6), resume=True).model
    assert straight.iteration == resumed.iteration == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between straight and resumed training"
    fresh = fit(run_config(key, tmp_path / "short", 3)).model
    assert any(not torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), resumed.state_dict().values()))


def test_two_process_ddp(tmp_path):
    """gloo DDP through the real CLI: identical weights on both ranks, and the logged bits/dim is their mean."""
    weights, local, run_dir = run_ddp_fit("row_lstm", tmp_path, 3)
    assert_identical_ranks(weights)
    assert local[0][0]["bpd"] != local[1][0]["bpd"], "ranks must see different clips"
    logged = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("train/bpd")]
    for step in range(3):
        want = (local[0][step]["bpd"] + local[1][step]["bpd"]) / 2
        assert float(logged[step]["train/bpd"]) == pytest.approx(want, rel=1e-5)


def test_zoo_eval_bpd_scores_a_pixel_checkpoint_and_refuses_others(tmp_path):
    from zoo.evaluation import EvalRequest, evaluate

    result = fit(run_config("pixelcnn", tmp_path / "pix", 2))
    ckpt = str(result.run_dir / "checkpoints" / "last.ckpt")
    leaderboard = tmp_path / "lb.csv"
    (row,) = evaluate(EvalRequest(metrics=["bpd"], ckpt=ckpt, num_real=8, batch_size=4, leaderboard=str(leaderboard)))
    # the same number straight from the model on the same 8 clips: the test split at the training seed + 1 (shapes has
    # no split, so at the training seed it would repeat the training videos), in list order
    from zoo.datasets import build_dataset
    from zoo.datasets.cliplist import make_clip_list
    from zoo.evaluation.protocol import real_data_config
    from zoo.metrics.presets import PRESETS
    from zoo.models import load_model
    from zoo.models.base import checkpoint_meta, read_checkpoint
    from zoo.video_io import from_uint8

    model = load_model(ckpt)
    run = checkpoint_meta(read_checkpoint(ckpt), ckpt)
    config = real_data_config(EvalRequest(metrics=["bpd"]), run, PRESETS["bpd"])
    assert config.seed == run["experiment"]["data"]["seed"]
    config = type(config)(**{**config.__dict__, "split": "test", "seed": config.seed + 1, "frames": model.spec.frames})
    dataset = build_dataset(config.name, config)
    clips = make_clip_list(dataset, 8, config.seed).clips[:8]
    videos = torch.stack([from_uint8(dataset.pixels_at(c[0], c[1])) for c in clips])
    with torch.no_grad():
        want = model.bits_per_dim(videos).mean().item()
    assert row.values["bpd"] == pytest.approx(want, rel=1e-5)
    lines = list(csv.DictReader(open(leaderboard)))
    assert lines[0]["metric"] == "bpd" and lines[0]["model"] == "pixelcnn"

    other = fit(resolve_config("mocogan", "shapes", MODELS.get("mocogan").config_class,
                               [REPO / "experiments/mocogan/tiny.yaml"],
                               [f"train.run_dir={tmp_path / 'moco'}", "train.max_steps=1", "train.sample_every=0"]))
    with pytest.raises(ZooError, match="no log-likelihood"):
        evaluate(EvalRequest(metrics=["bpd"], ckpt=str(other.run_dir / "checkpoints" / "last.ckpt"), num_real=8,
                             leaderboard=None))


# -- learning ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_learns_shapes_below_a_per_pixel_histogram(key, tmp_path):
    """Briefly trained on `shapes` (experiments/<key>/shapes.yaml), held-out bits/dim falls a bit more than one bit
    below 8 (uniform) and below the per-position marginal: a 256-bin histogram per (c, t, y, x) fitted on the training
    clips (add-one smoothing) and scored on the held-out ones. Its samples (8 frames, the shortest clip shapes_net
    takes; the temporal context runs on past the 4 training frames) also score below half the untrained network's
    `fvd_shapes`, the learning check of every other model."""
    from tests.models.distances import fvd_shapes_distance
    from zoo.datasets import build_dataset
    from zoo.datasets.datamodule import VideoDataModule
    from zoo.metrics.detectors.shapes_net import MIN_FRAMES
    from zoo.training import build_model

    shapes_yaml = REPO / "experiments" / key / "shapes.yaml"
    config = resolve_config(key, "shapes", MODELS.get(key).config_class, [shapes_yaml],
                            [f"train.run_dir={tmp_path}", "train.sample_every=0", "train.checkpoint_every=100000",
                             "model.val_every=0"])
    torch.manual_seed(config.train.seed)
    initial = build_model(config, VideoDataModule(config.data, config.train.batch_size, config.train.seed)).eval()
    model = fit(config).model.cpu().eval()
    data = config.data
    train = build_dataset("shapes", data)
    held = build_dataset("shapes", type(data)(**{**data.__dict__, "seed": data.seed + 1}))
    n = 1024  # fewer clips would weaken the baseline (add-one smoothing over 256 bins)
    train_levels = torch.stack([train.pixels_at(i, 0) for i in range(n)]).long()  # (n, T, H, W, C)
    held_videos = torch.stack([held[i]["video"] for i in range(64)])
    held_levels = torch.floor(held_videos * 127.5 + 128).clamp(0, 255).long().permute(0, 2, 3, 4, 1)  # as uint8
    counts = torch.ones(*train_levels.shape[1:], 256)
    counts.scatter_add_(-1, train_levels.permute(1, 2, 3, 4, 0), torch.ones_like(train_levels.permute(1, 2, 3, 4, 0),
                                                                               dtype=torch.float))
    probs = counts / counts.sum(-1, keepdim=True)
    histogram = -torch.log2(probs[None].expand(64, *probs.shape).gather(-1, held_levels[..., None])).mean().item()
    with torch.no_grad():
        bpd = model.bits_per_dim(held_videos).mean().item()
    print(f"{key}: held-out {bpd:.3f} bits/dim, per-pixel histogram {histogram:.3f}")
    # measured (gated_pixelcnn, 400 steps, 2 shared CPU cores): 6.27 against a histogram of 6.45
    assert bpd < 7.0 and bpd < histogram, (bpd, histogram)
    longer = build_dataset("shapes", type(data)(**{**data.__dict__, "frames": MIN_FRAMES, "seed": data.seed + 1}))
    real = torch.stack([longer[i]["video"] for i in range(64)])
    d_initial, d_trained = (fvd_shapes_distance(real, m.sample(64, generator=torch.Generator().manual_seed(0),
                                                                 frames=MIN_FRAMES)) for m in (initial, model))
    print(f"{key}: fvd_shapes untrained {d_initial:.1f}, trained {d_trained:.1f}")
    assert d_trained < 0.5 * d_initial, (d_initial, d_trained)


@pytest.mark.slow
def test_trained_context_makes_the_past_frames_count(tmp_path):
    """After training, a frame's likelihood must depend on the frames before it: on held-out `shapes` clips, frame 1
    costs clearly fewer bits after its own frame 0 than after another clip's. (The first context encoder, plain ReLU
    residual blocks, saturated the ConvLSTM within 50 steps and the two costs stayed exactly equal for 4,000 steps.)
    PixelCNN, the cheapest decoder: the context module is the same for all four."""
    from zoo.datasets import build_dataset
    from zoo.models.pixel.module import pixel_levels

    key = "pixelcnn"
    shapes_yaml = REPO / "experiments" / key / "shapes.yaml"
    config = resolve_config(key, "shapes", MODELS.get(key).config_class, [shapes_yaml],
                            [f"train.run_dir={tmp_path}", "train.sample_every=0", "train.checkpoint_every=100000",
                             "model.val_every=0", "train.max_steps=1000", "data.num_workers=0"])
    model = fit(config).model.cpu().eval()
    held = build_dataset("shapes", dataclasses.replace(config.data, seed=config.data.seed + 1))
    videos = torch.stack([held[i]["video"] for i in range(64)])
    other_past = videos.clone()
    other_past[:, :, 0] = videos.roll(1, dims=0)[:, :, 0]  # frame 0 of the previous clip
    levels = pixel_levels(videos[:, :, 1])  # frame 1 as the 8-bit levels the model scores

    def frame_1_bits(clips):
        with torch.no_grad():
            logits = model(clips)[:, :, :, 1]  # (B, 256, C, H, W)
        return torch.nn.functional.cross_entropy(logits, levels).item() / math.log(2)

    own, other = frame_1_bits(videos), frame_1_bits(other_past)
    print(f"frame 1: {own:.3f} bits/dim after its own frame 0, {other:.3f} after another clip's")
    # measured (1,000 steps, 1 thread): 4.75 against 6.70 bits/dim; the ReLU encoder: equal to 3 decimals
    assert other - own > 0.5, (own, other)


@pytest.mark.parametrize("key", KEYS)
def test_paper_default_networks_build(key):
    """Defaults = the papers' sizes (256 / 1024 features split unevenly into R, G, B) at the UCF-101 setting."""
    cls = MODELS.get(key)
    model = cls(cls.config_class(), VideoSpec(3, 16, 64, 101))
    assert model.decoder.head.logits.out_channels == 3 * 256
