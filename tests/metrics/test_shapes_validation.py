"""fvd_shapes validated by graded distortions of real clips, on a small scale (`benchmarks/shapes_metric_validation.py`
prints the full table): it rises with each distortion's strength, motion-only ones and Gaussian noise included, and
two independent real sets score below the distorted ones.

What the metric misses is asserted nowhere and reported in docs/shapes-benchmark.md: the mildest noise level (std 4)
scores within the real-vs-real spread, and the mildest shift and colour levels (1 px, 5 % mix) barely above it. The
v1 detector, trained on clean clips only, also scored std-64 noise below std 16; v2 (corruption augmentation) fixed
that, and this test now checks noise like every other distortion."""

import pytest

from benchmarks.shapes_metric_validation import DISTORTIONS, distort, features, source_clips
from zoo.metrics.frechet import frechet_distance

NUM = 128  # clips per set: enough for a stable ordering at levels 1, 3 and 5
MISSED_AT_LEVEL_1 = ("noise", "shift", "colour")  # within the real-vs-real spread at level 1 (see the docstring)


@pytest.fixture(scope="module")
def scores():
    from zoo.metrics.detectors import build_extractor

    extractor = build_extractor("shapes_net")
    reference = features(extractor, source_clips(0, NUM)[:, :16])
    source = source_clips(1, NUM)
    out = {"real": frechet_distance(reference, features(extractor, distort(source, "noise", 0)))}
    for name, strengths in DISTORTIONS.items():
        for level in (1, 3, 5):
            clips = distort(source, name, strengths[level - 1], seed=level)
            out[name, level] = frechet_distance(reference, features(extractor, clips))
    return out


@pytest.mark.parametrize("name", list(DISTORTIONS))
def test_fvd_shapes_rises_with_distortion_strength(scores, name):
    values = [scores[name, level] for level in (1, 3, 5)]
    assert values == sorted(values) and len(set(values)) == len(values), values


@pytest.mark.parametrize("name", list(DISTORTIONS))
def test_independent_real_sets_score_below_the_distortions(scores, name):
    level = 3 if name in MISSED_AT_LEVEL_1 else 1  # motion-only distortions: already at the mildest level
    assert scores["real"] < scores[name, level], (scores["real"], scores[name, level])


def test_distortions_change_what_they_name():
    """Motion-only distortions keep every frame's content (freeze, shuffle: the same frames; speed: the same video),
    appearance ones keep the frame count."""
    import torch

    source = source_clips(1, 4)
    clips = source[:, :16]
    shuffled = distort(source, "shuffle", 16)
    assert not torch.equal(shuffled, clips)
    assert torch.equal(shuffled.sort(dim=1).values, clips.sort(dim=1).values)  # a permutation of the same frames
    frozen = distort(source, "freeze", 1)
    assert torch.equal(frozen, clips[:, :1].expand(-1, 16, -1, -1, -1))
    assert torch.equal(distort(source, "speed", 2.0), source[:, 0:32:2])
    for name in ("noise", "blur", "shift", "colour"):
        assert distort(source, name, DISTORTIONS[name][0]).shape == clips.shape
