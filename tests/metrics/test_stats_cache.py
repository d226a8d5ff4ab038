"""The real-feature cache (`$ZOO_CACHE/stats/*.npz`) is trusted only when an entry matches the protocol it claims:
every damaged or foreign file is recomputed and replaced, with one line naming it, and the score is the fresh one."""

import json
import pickle

import numpy as np
import pytest

from zoo.cli import main


@pytest.fixture()
def scored(tmp_path, monkeypatch, capsys):
    """`zoo eval` of a synthesized folder against `shapes` (the packaged shapes_net: no download), run once to fill
    the cache: `(argv, the cache file, its features, its meta record, the value)`."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "fake"
    assert main(["data", "synth", "--out", str(fake), "--num", "4", "--frames", "16", "--resolution", "32"]) == 0
    argv = ["eval", "--metric", "fvd_shapes", "--fake-dir", str(fake), "--data", "shapes", "--resolution", "32",
            "--num-samples", "4", "--num-real", "4", "--batch-size", "4", "--no-leaderboard"]
    capsys.readouterr()
    assert main(argv) == 0
    value = _value(capsys.readouterr().out)
    [path] = list((tmp_path / "cache" / "stats").iterdir())
    with np.load(path) as npz:
        features, meta = npz["features"], str(npz["meta"])
    assert features.shape == (4, 128) and features.dtype == np.float64
    return argv, path, features, meta, value


def _row(out: str) -> str:
    [row] = [line for line in out.splitlines() if line.startswith("fvd ")]
    return row


def _value(out: str) -> float:
    return float(_row(out).split()[2])


def _corruptions(features: np.ndarray, meta: str) -> dict:
    """name -> (writer of the damaged file, a word the replacement line must give as the reason)."""
    def npz(**arrays):
        def write(path):
            with open(path, "wb") as f:  # a file object: np.savez keeps the exact name (adds no .npz)
                np.savez(f, **arrays)
        return write

    def raw(data: bytes):
        return lambda path: path.write_bytes(data)

    nan = features.copy()
    nan[1, 3] = np.nan
    other = json.dumps({**json.loads(meta), "fingerprint": "another"})
    return {
        "2 rows instead of 4": (npz(features=features[:2], meta=np.array(meta)), "(2, 128)"),
        "a NaN feature": (npz(features=nan, meta=np.array(meta)), "not finite"),
        "wrong width": (npz(features=features[:, :64], meta=np.array(meta)), "(4, 64)"),
        "float32": (npz(features=features.astype(np.float32), meta=np.array(meta)), "float32"),
        "object array": (npz(features=np.array([object()] * 4, dtype=object), meta=np.array(meta)), "read"),
        "raw pickle": (raw(pickle.dumps({"features": features})), "read"),
        "missing key": (npz(meta=np.array(meta)), "no 'features' entry"),
        "zero bytes": (raw(b""), "read"),
        "truncated": (None, "read"),  # the first half of the valid file
        "another fingerprint": (npz(features=features, meta=np.array(other)), "fingerprint"),
    }


def test_every_damaged_cache_entry_is_recomputed_and_replaced(scored, capsys):
    argv, path, features, meta, value = scored
    valid = path.read_bytes()
    for name, (write, reason) in _corruptions(features, meta).items():
        if write is None:
            path.write_bytes(valid[: len(valid) // 2])
        else:
            write(path)
        assert main(argv) == 0, name
        out = capsys.readouterr().out
        replaced = [line for line in out.splitlines() if line.startswith("replaced the cached real features")]
        assert len(replaced) == 1 and str(path) in replaced[0] and reason in replaced[0], (name, out)
        assert _value(out) == value, f"{name}: scored with the damaged features"
        assert _row(out).endswith(" computed"), name
        with np.load(path, allow_pickle=False) as npz:  # the file is whole again
            np.testing.assert_array_equal(npz["features"], features)
    assert main(argv) == 0  # and used as found from now on, without a word
    out = capsys.readouterr().out
    assert "replaced" not in out and _value(out) == value
