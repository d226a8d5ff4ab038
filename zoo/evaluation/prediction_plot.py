"""Per-time-step curves of the prediction task (`zoo eval --task predict --plot FILE.png`): PSNR / SSIM (/ LPIPS) of
the best of N against the predicted frame index, one line per model -- the figure SVG (Fig. 4) and SAVP report."""

from __future__ import annotations

import json
from pathlib import Path

from zoo.errors import ZooError

PLOTTED = ("psnr", "ssim", "lpips")


def plot_per_step(curves: dict[str, dict[str, list[float]]], context: int, path: str | Path, title: str = "") -> Path:
    """Write one panel per metric, one line per model.

    Args:
        curves: model label -> metric key -> per-step values (`[P]`, predicted frame 1 .. P).
        context: C, so the x axis reads the frame's index in the clip (C + 1 .. C + P).
        path: PNG to write (its folder is created).
        title: figure title (the protocol).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in PLOTTED if any(k in c for c in curves.values())]
    if not keys:
        raise ZooError("--plot: no per-step psnr / ssim / lpips values to plot (ask --metric psnr or ssim)")
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, values in sorted(curves.items()):
            if key in values:
                steps = range(context + 1, context + 1 + len(values[key]))
                ax.plot(list(steps), values[key], marker="." if len(values[key]) < 40 else None, label=label)
        ax.set_xlabel(f"frame (1-based; frames 1..{context} are the context)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"best-of-N {key.upper()}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def leaderboard_curves(rows: list[dict], fingerprint: str) -> dict[str, dict[str, list[float]]]:
    """The newest per-step values of each model among leaderboard `rows` scored under `fingerprint`."""
    curves: dict[str, dict[str, list[float]]] = {}
    for row in rows:  # rows are in append order: later ones overwrite
        if row.get("fingerprint") != fingerprint or row.get("metric") not in PLOTTED:
            continue
        try:
            steps = json.loads(row.get("extra") or "{}").get(f"{row['metric']}_per_step")
        except json.JSONDecodeError:
            continue
        if isinstance(steps, list):
            curves.setdefault(row["model"], {})[row["metric"]] = [float(v) for v in steps]
    return curves


def plot_request(results, request, run: dict) -> str:
    """The plot of this run's results beside the leaderboard's rows of the same protocol; returns what it says."""
    from zoo.leaderboard import read_rows

    fingerprint = results[0].fingerprint
    curves: dict[str, dict[str, list[float]]] = {}
    if request.leaderboard and Path(request.leaderboard).is_file():
        curves = leaderboard_curves(read_rows(request.leaderboard), fingerprint)
    label = run.get("model_name") or "model"
    for r in results:
        if f"{r.metric}_per_step" in r.values:
            curves.setdefault(label, {})[r.metric] = list(r.values[f"{r.metric}_per_step"])
    values = results[0].values
    title = (f"{values['context']} -> {values['horizon']} frames, best of {values['samples_per_sequence']}, "
             f"{values['sequences']} held-out sequences")
    path = plot_per_step(curves, int(values["context"]), request.plot, title)
    return f"per-step plot ({len(curves)} model(s)): {path}"
