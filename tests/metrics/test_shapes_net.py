"""The in-repo `shapes_net` detector: packaged weights checked by SHA-256, input convention, what it learned, and a
reproducible training command."""

import shutil

import numpy as np
import pytest
import torch

from zoo.errors import ZooError
from zoo.metrics.detectors import build_extractor
from zoo.metrics.detectors.shapes_net import (
    CORRUPTIONS,
    WEIGHTS_FILE,
    ShapesNet,
    corrupt,
    evaluate_heldout,
    heldout_set,
    load_shapes_net,
    shapes_input,
    train_shapes_net,
)
from zoo.metrics.detectors.weights import WEIGHTS, resolve, sha256_of


def test_packaged_weights_are_small_and_pinned():
    assert WEIGHTS_FILE.stat().st_size < 2_000_000
    got = resolve("shapes_net", fetch=False)
    assert got.path == WEIGHTS_FILE and got.verified and got.sha256 == WEIGHTS["shapes_net"].sha256
    assert sha256_of(WEIGHTS_FILE) == WEIGHTS["shapes_net"].sha256
    for name in ("shapes_net", "shapes_net_probs", "shapes_net_frames"):  # what rows and protocol records carry
        info = build_extractor(name).info
        assert info.verified and info.trust == "verified"


def test_a_replaced_packaged_file_is_refused(monkeypatch):
    """The checksum is checked on every load: a table entry that does not match the file stops the load."""
    import dataclasses

    from zoo.metrics.detectors import weights

    monkeypatch.setitem(weights.WEIGHTS, "shapes_net", dataclasses.replace(WEIGHTS["shapes_net"], sha256="0" * 64))
    with pytest.raises(ZooError, match="corrupt or replaced"):
        build_extractor("shapes_net")


def test_other_weights_files_are_recorded_as_unverified(tmp_path):
    copy = tmp_path / "retrained.pt"
    shutil.copy(WEIGHTS_FILE, copy)
    with copy.open("ab") as f:
        f.write(b"\0")
    extractor = build_extractor("shapes_net", weights_path=copy)
    assert extractor.info.verified is False and extractor.info.trust == "unverified"
    assert extractor.info.sha256 == sha256_of(copy)
    bad = tmp_path / "bad.pt"
    torch.save({"nope": torch.zeros(1)}, bad)
    with pytest.raises(ZooError, match="not a shapes_net state dict"):
        load_shapes_net(bad)


def test_input_convention():
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (2, 20, 48, 40, 3), dtype=np.uint8))
    x = shapes_input(pixels)
    assert x.shape == (2, 3, 16, 32, 32) and -1 <= x.min() and x.max() <= 1
    assert torch.equal(x, shapes_input(pixels[:, :16]))  # the first 16 frames, never resampled in time
    grey = pixels[..., :1]
    assert torch.equal(shapes_input(grey), shapes_input(grey.expand(-1, -1, -1, -1, 3)))
    with pytest.raises(ZooError, match="at least 8 frames"):
        shapes_input(pixels[:, :7])
    with pytest.raises(ZooError, match="uint8"):
        shapes_input(pixels.float())


def test_extractor_outputs():
    pixels = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 8, 32, 32, 3), dtype=np.uint8))
    feats = build_extractor("shapes_net")(pixels)
    probs = build_extractor("shapes_net_probs")(pixels)
    frames = build_extractor("shapes_net_frames")(pixels)
    assert feats.shape == (3, 128) and feats.dtype == torch.float64 and (feats >= 0).all()
    assert probs.shape == (3, 9) and torch.allclose(probs.sum(1), torch.ones(3, dtype=torch.float64))
    assert frames.shape == (3, 256)


def test_shipped_detector_reads_what_the_generator_drew():
    """Held-out videos (a data seed never trained on), every clip length and source resolution of training."""
    result = evaluate_heldout(load_shapes_net(), heldout_set(seed=7, count=150))
    assert result["accuracy"] > ACCURACY_FLOOR, result
    assert result["mae_size"] < 0.02 and result["mae_background"] < 0.03, result


ACCURACY_FLOOR = 0.9


def test_training_is_reproducible_from_the_seed(tmp_path):
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    for seed, out in ((3, a), (3, b), (4, c)):
        train_shapes_net(seed=seed, steps=2, batch_size=4, out=out, heldout=50, log=lambda _: None)
    sa, sb, sc = (torch.load(p, weights_only=True) for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert set(sa) == set(ShapesNet().state_dict())


def test_fvd_shapes_distance_separates_real_from_blank_and_noise_videos():
    """The learning checks' distance (tests/models/distances.py): real vs real far below real vs blank or noise."""
    from tests.models.distances import fvd_shapes_distance
    from zoo.datasets import build_dataset

    dataset = build_dataset("shapes", frames=8, resolution=32)
    a = torch.stack([dataset[i]["video"] for i in range(48)])
    b = torch.stack([dataset[i]["video"] for i in range(48, 96)])
    noise = torch.rand(a.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    floor = fvd_shapes_distance(a, b)
    assert floor < 0.1 * fvd_shapes_distance(a, torch.zeros_like(a)) and floor < 0.1 * fvd_shapes_distance(a, noise)


def test_corruptions_grow_with_severity():
    """Each training corruption is the identity at severity 0 (up to the blur's smallest kernel) and moves the clip
    further from the clean one as the severity grows."""
    from zoo.datasets.shapes import render_clip

    clip = render_clip(0, 3, 8, 32)["pixels"]
    for kind in CORRUPTIONS:
        dist = [float((corrupt(clip, kind, s, torch.Generator().manual_seed(0)).float() - clip.float()).abs().mean())
                for s in (0.0, 0.3, 1.0)]
        assert dist[0] < 1.0 < dist[1] < dist[2], (kind, dist)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(clip, "jpeg", 0.5, torch.Generator())


def test_shipped_detector_reads_corruption_severity_back():
    """The severity head ranks every training corruption of growing severity on held-out clips and reads clean clips
    as clean: what keeps the features from exploding on artefacts (the v1 detector, trained on clean clips only, did).
    Blur is read back weakest (0.34 at severity 1 when shipped: a blurred 32-pixel clip still looks like a clip)."""
    from zoo.datasets.shapes import render_clip

    net = load_shapes_net()
    clips = torch.stack([render_clip(10_007, i, 16, 32)["pixels"] for i in range(16)])
    with torch.no_grad():
        for index, kind in enumerate(CORRUPTIONS):
            means = []
            for severity in (0.0, 0.25, 0.5, 1.0):
                g = torch.Generator().manual_seed(1)
                batch = torch.stack([corrupt(c, kind, severity, g) for c in clips]) if severity else clips
                means.append(float(net(shapes_input(batch))["severity"][:, index].mean()))
            assert means == sorted(means) and means[0] < 0.1 and means[-1] > 0.25, (kind, means)
