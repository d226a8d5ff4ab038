"""What an evaluation prints, and the leaderboard rows it appends (with the code version that made them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch

from zoo import __version__
from zoo.config import stable_hash
from zoo.evaluation.request import EvalRequest, EvalResult
from zoo.metrics.presets import PRESETS, Preset


def code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min" if seconds < 3600 else f"{seconds / 3600:.3g} h"


def estimate_line(first_s: float, first_videos: int, total: int, batches: int) -> str:
    """What the first generated batch cost and the time all `batches` of this process will take at that rate."""
    return (f"first batch of {first_videos} generated videos took {_duration(first_s)}: about "
            f"{_duration(first_s * batches)} for all {total} (fewer --num-samples to go faster)")


def protocol_line(presets: list[Preset]) -> str:
    """The protocol a group of metrics is scored under, said before the work starts."""
    p0 = presets[0]
    stride = f" at stride {p0.frame_stride}" if p0.frame_stride > 1 else ""
    why = ""
    if p0.name in PRESETS and PRESETS[p0.name].frames != p0.frames:
        why = (f" (the checkpoint's own clip length, as `zoo bench` scores it; {PRESETS[p0.name].frames} for "
               "--fake-dir)")
    real = f"{p0.num_real} real / " if p0.num_real else ""
    return (f"{', '.join(p.name for p in presets)}: {p0.frames} frames{stride}{why}, {real}{p0.num_fake} generated, "
            f"detector {p0.detector}")


REAL_FEATURES = {"hit": "cached", "miss": "computed", "none": "-"}


def shown_values(result: EvalResult) -> dict:
    """The secondary values worth printing (the row keeps them all): not the headline again under another name (PRDC's
    coverage; KVD's TF-GAN estimate when the sets fit one block, where it is the full-set value), not an undefined
    one (null, with its reason), not a count of zero bad generated files."""
    values = result.values
    hidden = {result.metric, "_samples", *({"coverage"} if result.metric == "prdc" else ())}
    if result.metric == "kvd" and values.get("kvd_tfgan_block_stderr", 0.0) is None:
        hidden.add("kvd_tfgan_block")  # one block (no standard error): the block estimate is the full-set value
    if not values.get("fake_bad_files"):
        hidden.add("fake_bad_files")  # a --fake-dir read in full; bad files get their own line above the table
    return {k: v for k, v in values.items() if k not in hidden
            and not k.endswith("_undefined") and v is not None}


def report(results: list[EvalResult], request: EvalRequest, run: dict) -> None:
    """Print the table and append leaderboard rows (rank 0 only)."""
    from zoo.leaderboard import append_or_set_aside, make_row
    from zoo.metrics.stats import stats_dir

    print(f"{'metric':<8} {'preset':<26} {'value':>14} {'95% interval':>26} {'frames':>8} {'N real':>7} {'N gen':>7} "
          f"{'real features':>13}")
    rows = []
    for r in results:
        frames = f"{r.preset.frames}" + (f"/{r.preset.frame_stride}" if r.preset.frame_stride > 1 else "")
        cache = REAL_FEATURES[r.stats_cache]
        if r.metric == "stats":
            print(f"{'stats':<8} {r.preset.name:<26} {'':>14} {'':>26} {frames:>8} {r.num_real:>7} {'':>7} "
                  f"{cache:>13}")
            continue
        main = r.values[r.metric]
        interval = f"[{r.interval[0]:.4f}, {r.interval[1]:.4f}]" if r.interval else ""
        print(f"{r.metric:<8} {r.preset.name:<26} {main:>14.4f} {interval:>26} {frames:>8} {r.num_real:>7} "
              f"{r.num_fake:>7} {cache:>13}")
        for k, v in shown_values(r).items():
            print(f"  {k} = {v:.6g}" if isinstance(v, float) else f"  {k} = {v}")
        rows.append(make_row(r, request, run, code_version()))
    if any(r.stats_cache != "none" for r in results):
        print(f"real features: computed = extracted now and saved in {stats_dir()}; cached = read from "
              "there (same clips, detector and protocol)")
    if request.leaderboard and rows:
        samples = next((r.values.get("_samples") for r in results if "_samples" in r.values), None)
        gif = None
        if samples is not None and request.samples_gif:
            try:
                gif = _write_samples(samples, request.leaderboard, rows[0])
            except OSError as e:  # the rows matter more than their preview
                print(f"could not write the samples GIF beside {request.leaderboard}: {e}")
        for row in rows:
            row["samples"] = gif or ""
        print(append_or_set_aside(request.leaderboard, rows))  # never computes a metric and then drops it


def _write_samples(pixels: torch.Tensor, leaderboard: str, row: dict) -> str:
    from zoo.video_io import DEFAULT_TILE, from_uint8, make_grid, write_video

    name = stable_hash({k: row[k] for k in ("date", "model", "checkpoint_sha256", "preset")}, length=12)
    path = Path(leaderboard).resolve().parent / "leaderboard_samples" / f"{row['model']}-{name}.gif"
    write_video(make_grid(from_uint8(pixels), tile=DEFAULT_TILE), path)  # enlarged for the HTML page
    return os.path.relpath(path, Path(leaderboard).resolve().parent)
