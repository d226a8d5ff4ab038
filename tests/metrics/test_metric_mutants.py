"""Metric presets, the FVD / KVD / IS / PRDC / ACD torchmetrics and the real-feature cache, each checked against an
independent expectation (issue 19: mutation survivors).

Presets are compared with the protocol table written out here from shared/protocols/metrics.md (sections 1.3, 3, 4);
metric values with formulas computed here in numpy, or with `zoo.metrics.frechet`'s functions that are themselves
checked against shared/reference vectors (tests/metrics/test_frechet.py).
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from zoo.metrics.frechet import bootstrap_interval, kernel_distance_blocks

# -- presets ------------------------------------------------------------------------------------------------------

# name: (metric, num_real, num_fake, frames, frame_stride, detector, resize, aspect, covariance, splits, repeats,
#        is_convention), from the protocol notes (StyleGAN-V's fvd2048_*, TF FVD's /(N-1) and TF1 resize,
#        VideoGPT's 256/256 short-side crop, TGANv2's 10 loops x 2048 and StyleGAN-V's 10 splits for IS)
PROTOCOLS = {
    "fvd2048_16f": ("fvd", 2048, 2048, 16, 1, "i3d_torchscript", "torch_bilinear", "stretch", "biased", 1, 1,
                    "tgan2"),
    "fvd2048_128f": ("fvd", 2048, 2048, 128, 1, "i3d_torchscript", "torch_bilinear", "stretch", "biased", 1, 1,
                     "tgan2"),
    "fvd2048_128f_subsample8f": ("fvd", 2048, 2048, 16, 8, "i3d_torchscript", "torch_bilinear", "stretch", "biased",
                                 1, 1, "tgan2"),
    "fvd2048_16f_tf": ("fvd", 2048, 2048, 16, 1, "i3d_pretrained_400", "tf_legacy_bilinear", "stretch", "unbiased",
                       1, 1, "tgan2"),
    "fvd256_16f_videogpt": ("fvd", 256, 256, 16, 1, "i3d_pretrained_400", "torch_bilinear", "short_side_crop",
                            "unbiased", 1, 1, "tgan2"),
    "kvd2048_16f": ("kvd", 2048, 2048, 16, 1, "i3d_torchscript", "torch_bilinear", "stretch", "unbiased", 1, 1,
                    "tgan2"),
    "isv2048_ucf": ("is", 0, 2048, 16, 1, "c3d_ucf101_torchscript", "torch_bilinear", "stretch", "unbiased", 10, 1,
                    "stylegan_v"),
    "is2048_ucf": ("is", 0, 20480, 16, 1, "c3d_ucf101_npz", "torch_bilinear", "stretch", "unbiased", 1, 10, "tgan2"),
    "fvd_shapes": ("fvd", 1024, 1024, 16, 1, "shapes_net", "bilinear_antialias_32", "stretch", "unbiased", 1, 1,
                   "tgan2"),
    "kvd_shapes": ("kvd", 1024, 1024, 16, 1, "shapes_net", "bilinear_antialias_32", "stretch", "unbiased", 1, 1,
                   "tgan2"),
    "prdc_shapes": ("prdc", 1024, 1024, 16, 1, "shapes_net", "bilinear_antialias_32", "stretch", "unbiased", 1, 1,
                    "tgan2"),
    "is_shapes": ("is", 0, 1024, 16, 1, "shapes_net_probs", "bilinear_antialias_32", "stretch", "unbiased", 1, 1,
                  "tgan2"),
    "acd_shapes": ("acd", 1024, 1024, 16, 1, "shapes_net_frames", "bilinear_antialias_32", "stretch", "unbiased", 1,
                   1, "tgan2"),
    "bpd": ("bpd", 2048, 0, 16, 1, "none", "torch_bilinear", "stretch", "unbiased", 1, 1, "tgan2"),
}
FIELDS = ("metric", "num_real", "num_fake", "frames", "frame_stride", "detector", "resize", "aspect", "covariance",
          "splits", "repeats", "is_convention")


def test_presets_are_the_documented_protocols():
    from zoo.metrics.presets import DEFAULT_PRESET, PRESETS, SHAPES_PRESETS, Preset

    assert set(PRESETS) == set(PROTOCOLS)
    for name, expected in PROTOCOLS.items():
        preset = PRESETS[name]
        assert preset.name == name
        assert tuple(getattr(preset, f) for f in FIELDS) == expected, name
        protocol = preset.protocol()
        assert protocol == {"name": name, **dict(zip(FIELDS, expected))}, "the record has every field but the text"
        assert preset.description and preset.description == preset.description.strip()
    assert SHAPES_PRESETS == ("fvd_shapes", "kvd_shapes", "prdc_shapes", "is_shapes", "acd_shapes")
    assert DEFAULT_PRESET == {"fvd": "fvd2048_16f", "kvd": "kvd2048_16f", "is": "is2048_ucf", "prdc": "prdc_shapes",
                              "acd": "acd_shapes", "bpd": "bpd"}
    defaults = Preset("p", "fvd", 1, 1, 16, 1, "d")
    assert (defaults.resize, defaults.aspect, defaults.covariance, defaults.splits, defaults.repeats,
            defaults.is_convention, defaults.description) == ("torch_bilinear", "stretch", "unbiased", 1, 1, "tgan2",
                                                              "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["fvd2048_16f"].num_fake = 16


def test_presets_are_registered_metrics_with_their_kind_in_the_description():
    from zoo.metrics.presets import PRESETS
    from zoo.registry import METRICS

    for name, preset in PRESETS.items():
        entry = METRICS.entry(name)
        assert entry.obj is preset
        assert entry.description == f"[{preset.metric} preset] {preset.description}"


# -- FVD / KVD ----------------------------------------------------------------------------------------------------


def _features(seed: int, n: int = 12, d: int = 4, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, scale, size=(n, d))


def _frechet_by_hand(a, b, ddof):
    import scipy.linalg

    sa, sb = np.cov(a, rowvar=False, ddof=ddof), np.cov(b, rowvar=False, ddof=ddof)
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa + sb - 2 * scipy.linalg.sqrtm(sa @ sb).real))


def _mmd2_by_hand(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, the diagonals left out of the within-set means."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def _filled(metric, real, fake):
    if real is not None:
        metric.update(features=torch.from_numpy(real), real=True)
    metric.update(features=torch.from_numpy(fake))
    return metric


def test_fvd_default_covariance_is_unbiased_and_both_conventions_match_numpy():
    from zoo.metrics.fvd import FrechetVideoDistance

    real, fake = _features(0), _features(1, shift=0.3, scale=1.5)
    fvd = _filled(FrechetVideoDistance(), real, fake)
    assert fvd.covariance == "unbiased" and fvd.name == "fvd" and fvd.higher_is_better is False
    assert float(fvd.compute()) == pytest.approx(_frechet_by_hand(real, fake, 1), rel=1e-8)
    assert fvd.results() == {"fvd": pytest.approx(_frechet_by_hand(real, fake, 1), rel=1e-8)}
    biased = _filled(FrechetVideoDistance(covariance="biased"), real, fake)
    assert float(biased.compute()) == pytest.approx(_frechet_by_hand(real, fake, 0), rel=1e-8)
    with pytest.raises(ValueError, match=r"^covariance must be one of \('unbiased', 'biased'\), got 'N-1'$"):
        FrechetVideoDistance(covariance="N-1")
    with pytest.raises(ValueError, match=r"^FVD needs real videos: call update\(videos, real=True\)$"):
        _filled(FrechetVideoDistance(), None, fake).compute()


def test_kvd_is_the_unbiased_cubic_mmd_and_reports_tfgan_blocks():
    from zoo.metrics.fvd import KernelVideoDistance

    real, fake = _features(2, n=10), _features(3, n=9, shift=0.5)
    kvd = _filled(KernelVideoDistance(), real, fake)
    assert kvd.name == "kvd" and kvd.higher_is_better is False and kvd.max_block_size == 1024
    expected = _mmd2_by_hand(real, fake)
    assert float(kvd.compute()) == pytest.approx(expected, rel=1e-9)
    results = kvd.results()
    assert set(results) == {"kvd", "kvd_tfgan_block", "kvd_tfgan_block_stderr"}
    assert results["kvd"] == pytest.approx(expected, rel=1e-9)
    assert results["kvd_tfgan_block"] == pytest.approx(expected, rel=1e-9)  # one block: the full estimate
    assert np.isnan(results["kvd_tfgan_block_stderr"])
    blocks = _filled(KernelVideoDistance(max_block_size=5), real, fake).results()
    mean, stderr = kernel_distance_blocks(real, fake, 5)  # two blocks of 5 / 4-5 rows
    assert (blocks["kvd_tfgan_block"], blocks["kvd_tfgan_block_stderr"]) == (pytest.approx(mean), pytest.approx(stderr))
    assert blocks["kvd_tfgan_block"] != pytest.approx(expected, rel=1e-6)
    big = _filled(KernelVideoDistance(), _features(4, n=1025, d=2), _features(5, n=1025, d=2, shift=0.2)).results()
    assert big["kvd_tfgan_block"] == pytest.approx(
        kernel_distance_blocks(_features(4, n=1025, d=2), _features(5, n=1025, d=2, shift=0.2), 1024)[0], rel=1e-12)
    with pytest.raises(ValueError, match=r"^KVD needs real videos: call update\(videos, real=True\)$"):
        _filled(KernelVideoDistance(), None, fake).compute()


# -- the feature-metric base ----------------------------------------------------------------------------------------


class MeanPixel(nn.Module):
    """A real (tiny) extractor: per-video mean of each colour channel of uint8 `[B, T, H, W, C]`, plus a parameter
    so that a leak into the metric's state dict would show."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        assert pixels.dtype == torch.uint8 and pixels.ndim == 5
        return pixels.float().mean(dim=(1, 2, 3)) * self.scale.detach()


def test_videos_are_quantized_like_decoded_frames_before_the_extractor():
    from zoo.metrics.feature_metric import as_pixels
    from zoo.metrics.fvd import FrechetVideoDistance

    values = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0])
    video = values.view(1, 1, 5, 1, 1).expand(2, 3, 5, 2, 2).contiguous()  # [B, C, T, H, W]
    pixels = as_pixels(video)
    expected = torch.tensor([0, 64, 128, 159, 255], dtype=torch.uint8)  # floor(x * 127.5 + 128), clamped to 255
    assert pixels.dtype == torch.uint8 and pixels.shape == (2, 5, 2, 2, 3)
    assert torch.equal(pixels[0, :, 0, 0, 0], expected)
    raw = torch.randint(0, 256, (2, 4, 3, 3, 3), dtype=torch.uint8)
    assert as_pixels(raw) is raw
    with pytest.raises(ValueError, match=r"^uint8 videos must be \[B, T, H, W, C\], got \(4, 3, 3, 3\)$"):
        as_pixels(raw[0])
    metric = FrechetVideoDistance(MeanPixel())
    metric.update(video, real=True)
    metric.update(raw)
    real, fake = metric.feature_arrays()
    assert real.dtype == np.float64 and fake.dtype == np.float64
    np.testing.assert_allclose(real, np.full((2, 3), expected.double().mean().item()))
    np.testing.assert_allclose(fake, raw.double().mean(dim=(1, 2, 3)).numpy(), rtol=1e-6)


def test_feature_metric_states_errors_and_sides():
    from zoo.metrics.fvd import FrechetVideoDistance

    metric = FrechetVideoDistance()
    assert metric.feature_arrays() == (None, None)
    with pytest.raises(ValueError, match=r"^FrechetVideoDistance has no extractor; pass features=$"):
        metric.update(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match=r"^features must be \[B, D\], got \(2, 3, 1\)$"):
        metric.update(features=torch.zeros(2, 3, 1))
    metric.update(features=np.ones((2, 3), np.float32), real=True)  # any array-like, stored as float64
    real, fake = metric.feature_arrays()
    assert fake is None and real.dtype == np.float64 and real.shape == (2, 3)
    with pytest.raises(ValueError, match=r"^FrechetVideoDistance: no generated videos were added$"):
        metric.compute()
    metric.update(features=torch.full((1, 3), 2.0))
    metric.update(features=torch.full((2, 3), 3.0))
    real, fake = metric.feature_arrays()
    np.testing.assert_array_equal(fake, [[2.0] * 3, [3.0] * 3, [3.0] * 3])  # rows kept in order, both batches
    np.testing.assert_array_equal(real, np.ones((2, 3)))
    assert metric.compute().dtype == torch.float64


def test_extractor_is_kept_out_of_the_state_dict_but_stays_attached():
    from zoo.metrics.fvd import FrechetVideoDistance

    extractor = MeanPixel()
    metric = FrechetVideoDistance(extractor)
    assert not any("scale" in k for k in metric.state_dict())
    assert metric.extractor is extractor
    assert any("scale" in k for k, _ in metric.named_parameters()), "the probe would see a leak"


def test_bootstrap_is_the_percentile_interval_of_the_metrics_value():
    from zoo.metrics.fvd import FrechetVideoDistance

    real, fake = _features(6, n=16), _features(7, n=16, shift=0.4)
    metric = _filled(FrechetVideoDistance(), real, fake)

    def value(a, b):
        return _frechet_by_hand(a, b, 1)

    low, high = metric.bootstrap(rounds=20, seed=3, level=0.8)
    assert (low, high) == pytest.approx(bootstrap_interval(real, fake, value, 20, 3, 0.8), rel=1e-6)
    assert (low, high) != pytest.approx(bootstrap_interval(real, fake, value, 20, 0, 0.8), rel=1e-6)
    assert metric.bootstrap(rounds=20, seed=3) == pytest.approx(bootstrap_interval(real, fake, value, 20, 3, 0.95),
                                                                 rel=1e-6)
    assert metric.bootstrap(rounds=20) == pytest.approx(bootstrap_interval(real, fake, value, 20, 0, 0.95), rel=1e-6)


# -- IS ---------------------------------------------------------------------------------------------------------


def _is_by_hand(p: np.ndarray, eps: float) -> float:
    p = p + eps
    marginal = p.mean(0)
    return float(np.exp(np.mean([np.sum(row * (np.log(row) - np.log(marginal))) for row in p])))


def _probs(seed: int, n: int, k: int = 5) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(scale=2.0, size=(n, k))
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_inception_score_splits_and_repeats_by_hand():
    from zoo.metrics.inception_score import inception_score, inception_score_repeated

    p = _probs(0, 12)
    assert inception_score(p) == (pytest.approx(_is_by_hand(p, 1e-20), rel=1e-12), 0.0)
    thirds = [_is_by_hand(p[i * 4:(i + 1) * 4], 0.0) for i in range(3)]
    assert inception_score(p, splits=3, eps=0.0) == (pytest.approx(np.mean(thirds), rel=1e-12),
                                                     pytest.approx(np.std(thirds), rel=1e-9))
    sparse = np.eye(5)[[0, 0, 1, 2]]  # zeros: only the epsilon keeps the logs finite
    assert inception_score(sparse)[0] == pytest.approx(_is_by_hand(sparse, 1e-20), rel=1e-12)
    assert inception_score(torch.from_numpy(p))[0] == pytest.approx(_is_by_hand(p, 1e-20), rel=1e-12)
    order = np.arange(12)
    np.random.RandomState(42).shuffle(order)
    shuffled = [_is_by_hand(p[order][i * 6:(i + 1) * 6], 0.0) for i in range(2)]
    assert inception_score(p.copy(), splits=2, eps=0.0, shuffle_seed=42) == (
        pytest.approx(np.mean(shuffled), rel=1e-12), pytest.approx(np.std(shuffled), rel=1e-9))
    f32 = inception_score(p, float32=True)[0]
    assert f32 == pytest.approx(_is_by_hand(p, 0.0), rel=1e-5) and f32 != _is_by_hand(p, 1e-20)
    with pytest.raises(ValueError, match=r"^probs must be \[N, K\], got shape \(12,\)$"):
        inception_score(p[:, 0])
    halves = [_is_by_hand(p[:6], 1e-20), _is_by_hand(p[6:], 1e-20)]
    assert inception_score_repeated(p, 2) == (pytest.approx(np.mean(halves), rel=1e-12),
                                              pytest.approx(np.std(halves), rel=1e-9))
    assert inception_score_repeated(torch.from_numpy(p), 2, eps=0.0)[0] == pytest.approx(
        np.mean([_is_by_hand(p[:6], 0.0), _is_by_hand(p[6:], 0.0)]), rel=1e-12)


def test_video_inception_score_conventions():
    from zoo.metrics.inception_score import VideoInceptionScore

    p, real = _probs(1, 20), _probs(2, 8)
    tgan2 = VideoInceptionScore(repeats=2)
    assert tgan2.name == "is" and tgan2.higher_is_better is True
    _filled(tgan2, real, p)
    halves = [_is_by_hand(p[:10], 1e-20), _is_by_hand(p[10:], 1e-20)]
    assert float(tgan2.compute()) == pytest.approx(np.mean(halves), rel=1e-12)
    results = tgan2.results()
    assert results == {"is": pytest.approx(np.mean(halves), rel=1e-12), "is_std": pytest.approx(np.std(halves)),
                       "is_real": pytest.approx(np.mean([_is_by_hand(real[:4], 1e-20),
                                                         _is_by_hand(real[4:], 1e-20)]), rel=1e-12)}
    sgv = _filled(VideoInceptionScore(splits=2, convention="stylegan_v"), None, p)
    order = np.arange(20)
    np.random.RandomState(42).shuffle(order)
    q = p.astype(np.float32)[order]
    parts = [_is_by_hand(q[:10].astype(np.float64), 0.0), _is_by_hand(q[10:].astype(np.float64), 0.0)]
    out = sgv.results()
    assert set(out) == {"is", "is_std"}
    assert (out["is"], out["is_std"]) == (pytest.approx(np.mean(parts), rel=1e-5), pytest.approx(np.std(parts),
                                                                                                  rel=1e-3))
    one = _filled(VideoInceptionScore(), None, p)
    assert float(one.compute()) == pytest.approx(_is_by_hand(p, 1e-20), rel=1e-12)
    empty_real = VideoInceptionScore()
    empty_real.update(features=torch.zeros(0, 5, dtype=torch.float64), real=True)
    empty_real.update(features=torch.from_numpy(p))
    assert "is_real" not in empty_real.results()
    with pytest.raises(ValueError, match=r"^convention must be 'tgan2' or 'stylegan_v', got 'tf'$"):
        VideoInceptionScore(convention="tf")


# -- PRDC / ACD ---------------------------------------------------------------------------------------------------


def _prdc_by_hand(real, fake, k):
    def dist(a, b):
        return np.array([[np.linalg.norm(x - y) for y in b] for x in a])

    rr = np.sort(dist(real, real), axis=1)[:, k]
    fr = np.sort(dist(fake, fake), axis=1)[:, k]
    d = dist(real, fake)
    return {
        "precision": np.mean([any(d[i, j] <= rr[i] for i in range(len(real))) for j in range(len(fake))]),
        "recall": np.mean([any(d[i, j] <= fr[j] for j in range(len(fake))) for i in range(len(real))]),
        "density": np.mean([sum(d[i, j] <= rr[i] for i in range(len(real))) for j in range(len(fake))]) / k,
        "coverage": np.mean([any(d[i, j] <= rr[i] for j in range(len(fake))) for i in range(len(real))]),
    }


def test_prdc_metric_matches_the_definitions_by_hand():
    from zoo.metrics.prdc import PRDC, prdc

    real, fake = _features(8, n=14, d=3), _features(9, n=11, d=3, shift=0.6, scale=0.7)
    for k in (2, 5):
        expected = _prdc_by_hand(real, fake, k)
        assert prdc(real, fake, k) == pytest.approx(expected, abs=1e-12)
        assert len(set(expected.values())) == 4, "the four values differ here"
    metric = _filled(PRDC(k=2), real, fake)
    assert metric.name == "prdc" and metric.higher_is_better is True and PRDC().k == 5
    expected = _prdc_by_hand(real, fake, 2)
    assert float(metric.compute()) == pytest.approx(expected["coverage"], abs=1e-12)
    assert metric.results() == pytest.approx({"prdc": expected["coverage"], **expected}, abs=1e-12)
    with pytest.raises(ValueError, match=r"^PRDC with k=5 needs more than 5 real and fake samples, got 5 / 11$"):
        prdc(real[:5], fake)
    with pytest.raises(ValueError, match=r"^PRDC with k=5 needs more than 5 real and fake samples, got 14 / 5$"):
        prdc(real, fake[:5])
    with pytest.raises(ValueError, match=r"^PRDC needs real videos: call update\(videos, real=True\)$"):
        _filled(PRDC(), None, fake).compute()
    with pytest.raises(ValueError, match=r"^PRDC needs real and generated videos$"):
        _filled(PRDC(), None, fake).results()


def test_acd_metric_by_hand():
    from zoo.metrics.prdc import AverageContentDistance, average_content_distance

    x = _features(10, n=3, d=3 * 4)  # 3 videos, 3 frames of 4 features

    def acd(v, dim):
        per_video = []
        for row in v.reshape(len(v), -1, dim):
            t = len(row)
            per_video.append(sum(np.linalg.norm(a - b) for a in row for b in row) / (t * (t - 1)))
        return float(np.mean(per_video))

    assert average_content_distance(x, 4) == pytest.approx(acd(x, 4), rel=1e-12)
    assert average_content_distance(x, 6) == pytest.approx(acd(x, 6), rel=1e-12)
    with pytest.raises(ValueError, match=r"^ACD needs at least 2 frame features per video$"):
        average_content_distance(x, 12)
    with pytest.raises(ValueError, match=r"^frame features must be \[N, T \* 5\], got \(3, 12\)$"):
        average_content_distance(x, 5)
    metric = AverageContentDistance(dim=4)
    assert metric.name == "acd" and metric.higher_is_better is False and AverageContentDistance().dim == 64
    real = _features(11, n=2, d=8)
    _filled(metric, real, x)
    assert float(metric.compute()) == pytest.approx(acd(x, 4), rel=1e-12)
    assert metric.results() == {"acd": pytest.approx(acd(x, 4), rel=1e-12),
                                "acd_real": pytest.approx(acd(real, 4), rel=1e-12)}
    alone = _filled(AverageContentDistance(dim=4), None, x)
    assert alone.results() == {"acd": pytest.approx(acd(x, 4), rel=1e-12)}


# -- the real-feature cache -------------------------------------------------------------------------------------------


def test_real_feature_cache_round_trip_key_and_atomic_write(monkeypatch, tmp_path):
    from zoo.metrics import stats

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    detector = {"name": "i3d_torchscript", "sha256": "ab"}
    key = stats.stats_key("fp", detector, 2048)
    assert len(key) == 24 and key == stats.stats_key("fp", dict(detector), 2048)
    others = {stats.stats_key("fq", detector, 2048), stats.stats_key("fp", {**detector, "sha256": "ac"}, 2048),
              stats.stats_key("fp", detector, 2047)}
    assert len(others | {key}) == 4, "each part of the key changes it"
    assert stats.stats_path(key) == tmp_path / "cache" / "stats" / f"{key}.npz"
    assert stats.load_real_features(key, 2, 3, "fp") == (None, "")
    features = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    path = stats.save_real_features(key, features, {"b": 1, "a": [2], "fingerprint": "fp"})
    assert path == stats.stats_path(key) and os.listdir(path.parent) == [path.name], "no temporary file left"
    loaded, problem = stats.load_real_features(key, 2, 3, "fp")
    assert loaded.dtype == np.float64 and problem == ""
    np.testing.assert_array_equal(loaded, features.astype(np.float64))
    with np.load(path) as npz:
        assert npz["features"].dtype == np.float64
        assert str(npz["meta"]) == json.dumps({"a": [2], "b": 1, "fingerprint": "fp"})


# -- survivors of the first mutation run --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fvd", "kvd", "is", "prdc", "acd"])
def test_every_metric_keeps_its_extractor_and_torchmetrics_options(name):
    from zoo.metrics.fvd import FrechetVideoDistance, KernelVideoDistance
    from zoo.metrics.inception_score import VideoInceptionScore
    from zoo.metrics.prdc import PRDC, AverageContentDistance

    cls = {"fvd": FrechetVideoDistance, "kvd": KernelVideoDistance, "is": VideoInceptionScore, "prdc": PRDC,
           "acd": AverageContentDistance}[name]
    extractor = MeanPixel()
    metric = cls(extractor, sync_on_compute=False, compute_on_cpu=True)
    assert metric.extractor is extractor and metric.sync_on_compute is False and metric.compute_on_cpu is True
    raw = torch.randint(0, 256, (2, 2, 3, 3, 3), dtype=torch.uint8)
    metric.update(raw)
    np.testing.assert_allclose(metric.feature_arrays()[1], raw.double().mean(dim=(1, 2, 3)).numpy(), rtol=1e-6)


def test_ddp_sync_concatenates_every_ranks_rows():
    """torchmetrics' sync with a gather function standing for two ranks: rank 1 holds these rows + 10."""
    from zoo.metrics.fvd import FrechetVideoDistance

    metric = FrechetVideoDistance()
    metric.update(features=torch.ones(2, 3), real=True)
    metric.update(features=torch.zeros(1, 3))
    metric.sync(dist_sync_fn=lambda t, group=None: [t, t + 10], distributed_available=lambda: True)
    real, fake = metric.feature_arrays()
    np.testing.assert_array_equal(real, [[1.0] * 3, [1.0] * 3, [11.0] * 3, [11.0] * 3])
    np.testing.assert_array_equal(fake, [[0.0] * 3, [10.0] * 3])
    assert isinstance(metric.real_features, torch.Tensor) and metric.real_features.shape == (4, 3)


def test_persistent_states_follow_state_dict_arguments():
    from zoo.metrics.fvd import FrechetVideoDistance

    metric = FrechetVideoDistance(MeanPixel())
    metric.persistent(True)
    metric.update(features=torch.ones(2, 3))
    assert sorted(metric.state_dict(prefix="p.")) == ["p.fake_features", "p.real_features"]
    assert sorted(metric.state_dict(None, "q.")) == ["q.fake_features", "q.real_features"]  # positional form


def test_stylegan_v_is_in_float32_matches_the_reference_and_repeats_pass_their_options(shared_dir):
    from zoo.metrics.inception_score import VideoInceptionScore, inception_score_repeated

    vectors = np.load(shared_dir / "reference" / "frechet_kvd_is_vectors.npz")
    probs = torch.softmax(torch.from_numpy(vectors["is_logits"]).double(), dim=1).numpy().astype(np.float32)
    sgv = VideoInceptionScore(splits=10, convention="stylegan_v")
    sgv.update(features=torch.from_numpy(probs))
    out = sgv.results()
    # float64 arithmetic would differ from the reference by ~1e-7 relative; float32 gives it to the last digit
    np.testing.assert_allclose([out["is"], out["is_std"]], vectors["is_stylegan_v_mean_std"], rtol=1e-9)
    p = _probs(3, 12)
    halves = [[_is_by_hand(p[h * 6 + s * 3: h * 6 + (s + 1) * 3], 1e-20) for s in range(2)] for h in range(2)]
    mean_of_halves = np.mean([np.mean(h) for h in halves])
    assert inception_score_repeated(p, 2, splits=2)[0] == pytest.approx(mean_of_halves, rel=1e-12)
    metric = VideoInceptionScore(splits=2, repeats=2)
    metric.update(features=torch.from_numpy(p))
    assert float(metric.compute()) == pytest.approx(mean_of_halves, rel=1e-12)
    grad = torch.from_numpy(p).requires_grad_(True)  # a detector output still attached to a graph
    assert inception_score_repeated(grad, 2)[0] == pytest.approx(
        np.mean([_is_by_hand(p[:6], 1e-20), _is_by_hand(p[6:], 1e-20)]), rel=1e-12)


def test_prdc_and_acd_compute_half_precision_features_in_float64_and_keep_small_distances():
    from zoo.metrics.prdc import average_content_distance, prdc

    real, fake = _features(12, n=10, d=3) * 300, _features(13, n=9, d=3, shift=0.5) * 300  # squares overflow fp16
    r16, f16 = real.astype(np.float16), fake.astype(np.float16)
    assert prdc(r16, f16, 2) == pytest.approx(_prdc_by_hand(r16.astype(np.float64), f16.astype(np.float64), 2),
                                              abs=1e-12)
    frames = (_features(14, n=2, d=3 * 4) * 300).astype(np.float16)
    expected = average_content_distance(frames.astype(np.float64), 4)
    assert np.isfinite(expected) and average_content_distance(frames, 4) == pytest.approx(expected, rel=1e-12)
    small_real, small_fake = real / 3000, fake / 3000  # every distance below 1
    assert prdc(small_real, small_fake, 2) == pytest.approx(_prdc_by_hand(small_real, small_fake, 2), abs=1e-12)


def test_prdc_counts_points_exactly_on_a_ball_as_inside():
    """Integer points on a line: distances are exact, so ties with the k-NN radius happen; the definitions use <=."""
    from zoo.metrics.prdc import prdc

    differs = set()
    for seed in range(20):
        rng = np.random.default_rng(seed)
        real = rng.integers(0, 12, size=(8, 1)).astype(np.float64)
        fake = rng.integers(0, 12, size=(7, 1)).astype(np.float64)
        expected = _prdc_by_hand(real, fake, 2)
        assert prdc(real, fake, 2) == pytest.approx(expected, abs=1e-12), seed
        strict = _prdc_strict(real, fake, 2)
        differs |= {key for key in expected if strict[key] != pytest.approx(expected[key])}
    assert differs == {"precision", "recall", "density", "coverage"}, "the data has ties for every value"


def _prdc_strict(real, fake, k):
    def dist(a, b):
        return np.abs(a - b.T)

    rr, fr, d = np.sort(dist(real, real), 1)[:, k], np.sort(dist(fake, fake), 1)[:, k], dist(real, fake)
    return {"precision": (d < rr[:, None]).any(0).mean(), "recall": (d < fr[None, :]).any(1).mean(),
            "density": (d < rr[:, None]).sum(0).mean() / k, "coverage": (d.min(1) < rr).mean()}


def test_feature_cache_writes_beside_its_target_and_several_keys(monkeypatch, tmp_path):
    import tempfile

    from zoo.metrics import stats

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-system-temp"))  # never staged there
    first = stats.save_real_features("k1", np.ones((1, 2)), {"fingerprint": "f"})
    second = stats.save_real_features("k2", np.zeros((1, 2)), {"fingerprint": "f"})  # the folder exists by now
    assert sorted(os.listdir(first.parent)) == ["k1.npz", "k2.npz"] and second.parent == first.parent
    np.testing.assert_array_equal(stats.load_real_features("k2", 1, 2, "f")[0], np.zeros((1, 2)))
