"""Cached real-data features, keyed by the protocol fingerprint and the detector (weights checksum, input convention).

Real features are computed once per protocol and stored as float64 rows (`$ZOO_CACHE/stats/<key>.npz`), so FVD, KVD
and the bootstrap can all reuse them. The key covers everything that changes them; a hit is exact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from zoo.config import stable_hash
from zoo.metrics.detectors.weights import cache_dir


def stats_key(fingerprint: str, detector: dict, num_real: int) -> str:
    """Cache key of a real-feature set: data protocol fingerprint + detector record + number of clips."""
    return stable_hash({"fingerprint": fingerprint, "detector": detector, "num_real": num_real}, length=24)


def stats_path(key: str) -> Path:
    return cache_dir() / "stats" / f"{key}.npz"


def load_real_features(key: str) -> np.ndarray | None:
    """The cached float64 `[N, D]` features of `key`, or None on a miss."""
    path = stats_path(key)
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return npz["features"].astype(np.float64)


def save_real_features(key: str, features: np.ndarray, meta: dict) -> Path:
    """Write the features atomically (temp file + rename), with the protocol record as JSON metadata."""
    path = stats_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, features=np.asarray(features, np.float64), meta=np.array(json.dumps(meta, sort_keys=True)))
    os.replace(tmp, path)
    return path
