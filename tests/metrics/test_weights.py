"""Detector weights: never random; missing, corrupt and overridden files."""

import pytest
import torch

from zoo.errors import ZooError
from zoo.metrics.detectors import build_extractor
from zoo.metrics.detectors.seeded import seeded_c3d_npz, seeded_i3d_state_dict
from zoo.metrics.detectors.weights import WEIGHTS, recorded_sha256, resolve, sha256_of, weights_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


def test_missing_weights_name_file_url_and_command():
    with pytest.raises(ZooError) as err:
        build_extractor("i3d_torchscript")
    message = str(err.value)
    assert "i3d_torchscript.pt" in message and WEIGHTS["i3d_torchscript"].urls[0] in message
    assert "zoo weights fetch i3d_torchscript" in message and "--detector-weights" in message


def test_first_seen_file_is_pinned_and_corruption_is_caught():
    path = weights_dir() / "i3d_pretrained_400.pt"
    path.parent.mkdir(parents=True)
    torch.save(seeded_i3d_state_dict(), path)
    got = resolve("i3d_pretrained_400")  # placed by hand: structure checked, then its SHA-256 recorded
    assert recorded_sha256(WEIGHTS["i3d_pretrained_400"]) == sha256_of(path) == got.sha256
    assert got.trust == "pinned locally" and not got.verified, "loading and being pinned is not verification"
    assert resolve("i3d_pretrained_400").trust == "pinned locally"  # still only pinned the second time
    with open(path, "r+b") as f:  # flip one byte
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ZooError, match="corrupt"):
        resolve("i3d_pretrained_400")


def test_invalid_file_is_never_pinned():
    path = weights_dir() / "i3d_pretrained_400.pt"
    path.parent.mkdir(parents=True)
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(ZooError, match="pytorch-i3d naming|not a valid"):
        resolve("i3d_pretrained_400")
    assert recorded_sha256(WEIGHTS["i3d_pretrained_400"]) is None


def test_override_is_recorded_unverified(tmp_path):
    weights, mean = tmp_path / "conv3d_deepnetA_ucf.npz", tmp_path / "mean2.npz"
    seeded_c3d_npz(weights, mean)
    extractor = build_extractor("c3d_ucf101_npz", weights)
    assert extractor.info.verified is False and sha256_of(weights) in extractor.info.sha256
    assert extractor.info.trust == "unverified"
    pixels = torch.randint(0, 256, (2, 16, 40, 48, 3), dtype=torch.uint8)
    probs = extractor(pixels)
    assert probs.shape == (2, 101) and torch.allclose(probs.sum(1), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ZooError, match="does not exist"):
        build_extractor("i3d_pretrained_400", tmp_path / "nope.pt")


def test_verified_means_the_tables_checksum(monkeypatch):
    """A file is verified exactly when its SHA-256 equals the checksum pinned in WEIGHTS, whoever placed it."""
    import dataclasses

    from zoo.metrics.detectors import weights as table

    path = weights_dir() / "i3d_pretrained_400.pt"
    path.parent.mkdir(parents=True)
    torch.save(seeded_i3d_state_dict(), path)
    import hashlib

    official = hashlib.sha256(path.read_bytes()).hexdigest()  # stands in for a published checksum
    entry = dataclasses.replace(WEIGHTS["i3d_pretrained_400"], sha256=official)
    monkeypatch.setitem(table.WEIGHTS, "i3d_pretrained_400", entry)
    got = resolve("i3d_pretrained_400")
    assert got.trust == "verified" and got.verified
    info = build_extractor("i3d_pretrained_400").info
    assert info.verified and info.trust == "verified"
    assert resolve("i3d_pretrained_400", override=path).trust == "verified"  # an override with the same bytes
    entry = dataclasses.replace(entry, sha256="0" * 64)  # the table says another file
    monkeypatch.setitem(table.WEIGHTS, "i3d_pretrained_400", entry)
    with pytest.raises(ZooError, match="corrupt or replaced"):
        resolve("i3d_pretrained_400")
    assert resolve("i3d_pretrained_400", override=path).trust == "unverified"
