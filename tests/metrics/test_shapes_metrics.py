"""PRDC and ACD against values worked out by hand, and the shapes presets as `zoo eval` resolves them."""

import numpy as np
import pytest

from zoo.metrics.prdc import PRDC, AverageContentDistance, average_content_distance, prdc


def test_prdc_matches_hand_computed_values():
    """1-D, k = 1. Real {0, 1, 2, 3}: every real radius is 1. Fake {0.4, 10, 20, 3.05}:
    precision: 0.4 and 3.05 lie in a real ball -> 2/4; density: 0.4 in the balls of 0 and 1, 3.05 in the ball of 3
    -> 3 / (1 * 4); coverage: reals 0, 1, 3 have a fake within radius 1, real 2 (nearest fake 3.05) not -> 3/4;
    recall: fake radii 2.65, 6.95, 10, 2.65 -> every real lies in the ball of 0.4 or 3.05 -> 1."""
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.4], [10.0], [20.0], [3.05]])
    assert prdc(real, fake, k=1) == pytest.approx({"precision": 0.5, "recall": 1.0, "density": 0.75,
                                                   "coverage": 0.75})


def test_prdc_tells_mode_dropping_from_blur():
    """Half the modes, drawn sharply: high precision, low coverage; all modes drawn noisily: the reverse."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16)) * 10
    real = np.concatenate([c + rng.normal(size=(40, 16)) for c in centres])
    dropped = np.concatenate([c + rng.normal(size=(80, 16)) for c in centres[:4]])
    blurry = np.concatenate([c + 3 * rng.normal(size=(40, 16)) for c in centres])
    a, b = prdc(real, dropped, 5), prdc(real, blurry, 5)
    assert a["precision"] > 0.8 and a["coverage"] < 0.6
    assert b["precision"] < 0.2 and b["recall"] > a["recall"]


def test_prdc_metric_needs_real_and_enough_samples():
    metric = PRDC()
    metric.update(features=np.zeros((3, 2)), real=False)
    with pytest.raises(ValueError, match="needs real"):
        metric.compute()
    with pytest.raises(ValueError, match="more than 5"):
        prdc(np.zeros((5, 2)), np.zeros((9, 2)), 5)


def test_acd_matches_hand_computed_values():
    """Video 1: frames (0, 0), (3, 4), (0, 0): ordered pairs at distances 5, 0, 5, 5, 0, 5 -> mean 20 / 6;
    video 2: three equal frames -> 0. ACD = mean over videos = 10 / 6; the real set holds video 2 only -> 0."""
    feats = np.array([[0, 0, 3, 4, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=float)
    assert average_content_distance(feats, dim=2) == pytest.approx((10 / 3 + 0) / 2)
    metric = AverageContentDistance(dim=2)
    metric.update(features=feats, real=False)
    metric.update(features=feats[1:], real=True)
    assert metric.results() == pytest.approx({"acd": 5 / 3, "acd_real": 0.0})
    with pytest.raises(ValueError, match="T \\* 4"):
        average_content_distance(np.zeros((2, 6)), dim=4)


def test_shapes_presets_resolve_and_share_one_feature_pass():
    from zoo.evaluation import EvalRequest
    from zoo.evaluation.protocol import build_metric, group_key, resolve_presets
    from zoo.metrics.presets import PRESETS, SHAPES_PRESETS

    presets = resolve_presets(EvalRequest(metrics=list(SHAPES_PRESETS), num_samples=64, num_real=64))
    assert [p.metric for p in presets] == ["fvd", "kvd", "prdc", "is", "acd"]
    assert len({group_key(p) for p in presets}) == 3  # fvd / kvd / prdc on one pass; IS; ACD
    assert isinstance(build_metric(PRESETS["prdc_shapes"], None), PRDC)
    assert isinstance(build_metric(PRESETS["acd_shapes"], None), AverageContentDistance)
