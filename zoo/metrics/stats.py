"""Cached real-data features, keyed by the protocol fingerprint and the detector (weights checksum, input convention).

Real features are computed once per protocol and stored as float64 rows (`$ZOO_CACHE/stats/<key>.npz`), so FVD, KVD
and the bootstrap can all reuse them. The key covers everything that changes them; a hit is exact.

A cache entry is trusted only once it matches the protocol it claims: `rows` x `width` finite float64 features and
the fingerprint it was computed for, read without pickle. Anything else (truncated, empty, foreign, hand-edited) is
reported as the reason it cannot be used, and the caller recomputes and replaces the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from zoo.config import stable_hash
from zoo.metrics.detectors.weights import cache_dir


def stats_key(fingerprint: str, detector: dict, num_real: int) -> str:
    """Cache key of a real-feature set: data protocol fingerprint + detector record + number of clips."""
    return stable_hash({"fingerprint": fingerprint, "detector": detector, "num_real": num_real}, length=24)


def stats_dir() -> Path:
    return cache_dir() / "stats"


def stats_path(key: str) -> Path:
    return stats_dir() / f"{key}.npz"


def load_real_features(key: str, rows: int, width: int, fingerprint: str) -> tuple[np.ndarray | None, str]:
    """`(features, "")` with the cached float64 `[rows, width]` features of `key`; `(None, "")` when nothing is
    cached; `(None, reason)` when the file there cannot be used (then recompute and `save_real_features`)."""
    path = stats_path(key)
    if not path.exists():
        return None, ""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            if missing := sorted({"features", "meta"} - set(npz.files)):
                return None, f"it has no {' or '.join(map(repr, missing))} entry"
            features, meta = npz["features"], json.loads(str(npz["meta"]))
    except (OSError, ValueError, EOFError, TypeError, AttributeError, zipfile.BadZipFile, zlib.error) as e:
        return None, f"it cannot be read ({type(e).__name__}: {e})"
    return (features, "") if not (problem := _mismatch(features, meta, rows, width, fingerprint)) else (None, problem)


def _mismatch(features: np.ndarray, meta, rows: int, width: int, fingerprint: str) -> str:
    """Why `features` (and their `meta` record) are not the `rows` x `width` features of `fingerprint`, or ''."""
    if features.dtype != np.float64:
        return f"its features are {features.dtype}, not float64"
    if features.shape != (rows, width):
        return f"its features are {features.shape}, not the protocol's ({rows}, {width})"
    if not np.isfinite(features).all():
        return f"{int((~np.isfinite(features)).sum())} of its feature values are not finite"
    if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint:
        return "its record names another protocol fingerprint"
    return ""


def save_real_features(key: str, features: np.ndarray, meta: dict) -> Path:
    """Write the features atomically (temp file + rename), with the protocol record as JSON metadata."""
    path = stats_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, features=np.asarray(features, np.float64), meta=np.array(json.dumps(meta, sort_keys=True)))
    os.replace(tmp, path)
    return path
