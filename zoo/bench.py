"""`zoo bench`: train every registered model on `shapes`, score it offline with the shapes metrics, write a report.

For each model (first stages before the models that need them: `videogpt_vqvae` before `videogpt`) the bench trains
`experiments/<key>/shapes.yaml` (plus any `--config` / `--set`) in segments of `--eval-every` steps, resuming the
run's `last.ckpt` after each segment, and scores the checkpoint with `fvd_shapes`, `kvd_shapes`, `prdc_shapes`,
`is_shapes` and `acd_shapes` (the in-repo `shapes_net` detector: no network, no download) at the model's own clip
length and resolution. The last evaluation adds bootstrap intervals and appends leaderboard rows with full provenance
(`zoo.evaluate`). A real-versus-real row (two disjoint sets of real clips, data seeds s and s + 1) gives the floor of
each protocol.

Everything lives in `--out` (default `bench/`): `runs/<key>/` (the training runs), `state.json` (what is done,
replaced atomically after every phase), `leaderboard.csv`, `samples/<key>.gif` and `report.html`, a single file
with every image and plot embedded. Calling the same command again continues where it stopped: finished models
are skipped, unfinished ones resume from their last checkpoint.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import time
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.metrics.presets import PRESETS, SHAPES_PRESETS

# model key -> (first-stage model key, the config field that takes its checkpoint)
FIRST_STAGE = {"videogpt": ("videogpt_vqvae", "vqvae_ckpt")}
HEADLINE = "fvd_shapes"


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def plan(models: list[str]) -> list[str]:
    """The models to train, in order: `all` = every registered model; first stages are added and put first."""
    from zoo.registry import MODELS, load_all

    load_all()
    keys = list(MODELS.keys()) if not models or models == ["all"] else models
    for key in keys:
        MODELS.get(key)  # unknown keys: one clear error listing the valid ones
    ordered: list[str] = []
    for key in keys:
        first = FIRST_STAGE.get(key, (None,))[0]
        if first and first not in ordered:
            ordered.append(first)
        if key not in ordered:
            ordered.append(key)
    return ordered


class BenchState:
    """`state.json`: per model its steps, wall time, parameters, metric curve and final values."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {"models": {}, "floor": {}}

    def model(self, key: str) -> dict:
        return self.data["models"].setdefault(key, {"steps": 0, "wall_s": 0.0, "curve": []})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


@dataclasses.dataclass
class BenchRequest:
    data: str = "shapes"
    models: list[str] = dataclasses.field(default_factory=lambda: ["all"])
    out: str = "bench"
    max_steps: int | None = None  # default: each shapes.yaml's train.max_steps
    eval_every: int | None = None  # default: max_steps (evaluate once, at the end)
    num_samples: int = 256  # generated and real clips per evaluation
    bootstrap: int = 100  # resamples for the final intervals
    experiment: str | None = None  # also apply experiments/<key>/<experiment>.yaml (e.g. tiny) to every model
    configs: list[str] = dataclasses.field(default_factory=list)  # extra config files for every model
    sets: list[str] = dataclasses.field(default_factory=list)
    batch_size: int = 16  # evaluation batch


def _config(request: BenchRequest, key: str, state: BenchState, out: Path):
    from zoo.config import resolve_config
    from zoo.registry import MODELS

    sets = list(request.sets)
    if key in FIRST_STAGE:
        first, field = FIRST_STAGE[key]
        sets.append(f"model.{field}={(out / 'runs' / first / 'checkpoints' / 'last.ckpt').resolve()}")
    files = list(request.configs)
    if request.experiment:
        from zoo.config import experiment_file

        extra = experiment_file(key, request.experiment)
        if not extra.is_file():
            raise ZooError(f"--experiment {request.experiment}: {extra} does not exist")
        files.insert(0, extra)
    config = resolve_config(key, request.data, MODELS.get(key).config_class, files, sets)
    total = request.max_steps or config.train.max_steps
    train = dataclasses.replace(config.train, run_dir=str(out / "runs" / key), max_steps=total,
                                accelerator="cpu" if config.train.accelerator == "auto" and not
                                torch.cuda.is_available() else config.train.accelerator)
    return dataclasses.replace(config, train=train), total


def eval_frames(config) -> int:
    """Frames per scored clip of a model trained with `config`: the rule `zoo eval` applies to every checkpoint
    (`zoo.metrics.presets.eval_frames`)."""
    from zoo.metrics.presets import eval_frames as model_eval_frames

    return model_eval_frames(getattr(config.model, "sample_frames", None), config.data.frames)


def _presets(frames: int) -> list:
    return [dataclasses.replace(PRESETS[name], frames=frames) for name in SHAPES_PRESETS]


def _evaluate(request: BenchRequest, ckpt: Path, frames: int, final: bool, leaderboard: Path | None):
    from zoo.evaluate import EvalRequest, evaluate

    results = evaluate(EvalRequest(
        metrics=_presets(frames), ckpt=str(ckpt), data=request.data, num_samples=request.num_samples,
        num_real=request.num_samples, batch_size=request.batch_size, bootstrap=request.bootstrap if final else 0,
        leaderboard=str(leaderboard) if leaderboard else None, samples_gif=False,
    ))
    values, samples = {}, None
    for r in results:
        # undefined secondary values arrive as None with a `<name>_undefined` reason: not scores, left out here
        values[r.preset.name] = {k: float(v) for k, v in r.values.items()
                                 if k != "_samples" and isinstance(v, (int, float))}
        if r.interval:
            values[r.preset.name]["interval"] = list(r.interval)
        samples = r.values.get("_samples", samples)
    return values, samples


def _checkpoint_step(ckpt: Path) -> int:
    from zoo.models.base import checkpoint_meta, read_checkpoint

    return int(checkpoint_meta(read_checkpoint(ckpt), source=str(ckpt))["iteration"]) if ckpt.is_file() else 0


def _train_model(request: BenchRequest, key: str, state: BenchState, out: Path) -> None:
    from zoo.training import fit

    entry = state.model(key)
    config, total = _config(request, key, state, out)
    if entry["steps"] >= total and "final" in entry:
        _say(f"{key}: done earlier ({entry['steps']} steps), skipped")
        return
    every = request.eval_every or total
    ckpt = out / "runs" / key / "checkpoints" / "last.ckpt"
    entry.update(total_steps=total, frames=eval_frames(config), resolution=config.data.resolution)
    while entry["steps"] < total or "final" not in entry:
        target = min(total, (entry["steps"] // every + 1) * every) if entry["steps"] < total else total
        if _checkpoint_step(ckpt) < target:  # an interrupted segment resumes from its last checkpoint
            _say(f"{key}: training steps {entry['steps']} -> {target} of {total}")
            segment = dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=target))
            start = time.time()
            fit(segment, resume=True if ckpt.is_file() else None)
            entry["wall_s"] += time.time() - start
        entry["steps"] = target
        final = target >= total
        _say(f"{key}: evaluating step {target} ({'final, with intervals' if final else 'curve point'})")
        start = time.time()
        values, samples = _evaluate(request, ckpt, entry["frames"], final, out / "leaderboard.csv" if final
                                    else None)
        entry["eval_s"] = entry.get("eval_s", 0.0) + time.time() - start
        entry["curve"] = [p for p in entry["curve"] if p["step"] != target] + [{"step": target, **{
            name: v[name.split("_")[0]] for name, v in values.items()}}]
        if final:
            from zoo.models import load_model
            from zoo.video_io import from_uint8, make_grid, write_video

            entry["params"] = sum(p.numel() for p in load_model(str(ckpt)).parameters() if p.requires_grad)
            entry["final"] = values
            if samples is not None:
                gif = write_video(make_grid(from_uint8(samples)), out / "samples" / f"{key}.gif")
                entry["samples"] = os.path.relpath(gif, out)
        state.save()
        _say(f"{key}: {HEADLINE} = {values[HEADLINE]['fvd']:.3f} at step {target}")


def real_floor(request: BenchRequest, frames: int, resolution: int, seed: int = 0) -> dict:
    """The shapes metrics of one set of real clips against a disjoint one (data seeds `seed` and `seed + 1`)."""
    from zoo.config import DataConfig
    from zoo.datasets import build_dataset
    from zoo.evaluate import build_metric
    from zoo.metrics.detectors import build_extractor

    n = request.num_samples
    sets = []
    for s in (seed, seed + 1):
        dataset = build_dataset(request.data, DataConfig(name=request.data, frames=frames, resolution=resolution,
                                                         seed=s, num_videos=max(n, 1)))
        sets.append(torch.stack([dataset.pixels_at(i, 0) for i in range(n)]))
    out: dict = {}
    extractors: dict = {}
    for preset in _presets(frames):
        extractor = extractors.setdefault(preset.detector, build_extractor(preset.detector))
        metric = build_metric(preset, extractor)
        for i in range(0, n, request.batch_size):
            metric.update(sets[0][i : i + request.batch_size], real=True)
            metric.update(sets[1][i : i + request.batch_size], real=False)
        out[preset.name] = metric.results()
        out[preset.name]["interval"] = list(metric.bootstrap(request.bootstrap)) if request.bootstrap else None
    return out


def run_bench(request: BenchRequest) -> Path:
    """Train, evaluate and report every planned model; returns the report's path."""
    if request.data != "shapes":
        raise ZooError(f"zoo bench scores with the in-repo shapes detector and runs on --data shapes only, "
                       f"not {request.data!r}")
    if request.num_samples < 10:
        raise ZooError("--num-samples must be at least 10 (PRDC uses 5 nearest neighbours)")
    out = Path(request.out)
    out.mkdir(parents=True, exist_ok=True)
    state = BenchState(out / "state.json")
    state.data["num_samples"] = request.num_samples
    keys = plan(request.models)
    _say(f"plan: {', '.join(keys)} -> {out}")
    for key in keys:
        _train_model(request, key, state, out)
    for key in keys:
        entry = state.model(key)
        protocol = f"{entry['frames']}x{entry['resolution']}"
        if protocol not in state.data["floor"]:
            _say(f"real-vs-real floor at {protocol}")
            state.data["floor"][protocol] = real_floor(request, entry["frames"], entry["resolution"])
            state.save()
    path = write_report(state, keys, out)
    _say(f"report: {path}")
    return path


# -- the HTML report ----------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _curves(state: BenchState, keys: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SHAPES_PRESETS), figsize=(4 * len(SHAPES_PRESETS), 3.2))
    for ax, name in zip(axes, SHAPES_PRESETS):
        for key in keys:
            curve = state.model(key)["curve"]
            if curve:
                ax.plot([p["step"] for p in curve], [p[name] for p in curve], marker="o", label=key)
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def _cell(values: dict | None, name: str) -> str:
    if not values or name not in values:
        return "<td>-</td>"
    v = values[name]
    main = v[name.split("_")[0]]
    interval = v.get("interval")
    text = f"{main:.3f}" + (f"<br><small>[{interval[0]:.3f}, {interval[1]:.3f}]</small>" if interval else "")
    if name == "prdc_shapes":
        text += f"<br><small>P {v['precision']:.2f} R {v['recall']:.2f} D {v['density']:.2f}</small>"
    if name == "acd_shapes" and "acd_real" in v:
        text += f"<br><small>real {v['acd_real']:.3f}</small>"
    return f"<td>{text}</td>"


def write_report(state: BenchState, keys: list[str], out: Path) -> Path:
    """`report.html`: one self-contained page (GIFs and plots as data URIs)."""
    head = "".join(f"<th>{n}</th>" for n in SHAPES_PRESETS)
    rows = []
    for key in keys:
        e = state.model(key)
        rows.append(f"<tr><td>{html.escape(key)}</td><td>{e['resolution']}^2 x {e['frames']}</td>"
                    f"<td>{e['steps']}</td><td>{e.get('params', 0) / 1e6:.2f} M</td>"
                    f"<td>{e['wall_s'] / 60:.1f} min</td>" + "".join(_cell(e.get("final"), n) for n in SHAPES_PRESETS)
                    + "</tr>")
    for protocol, values in state.data["floor"].items():
        rows.append(f"<tr class='floor'><td>real vs real (floor)</td><td>{protocol.split('x')[1]}^2 x "
                    f"{protocol.split('x')[0]}</td><td>-</td><td>-</td><td>-</td>"
                    + "".join(_cell(values, n) for n in SHAPES_PRESETS) + "</tr>")
    grids = []
    for key in keys:
        gif = state.model(key).get("samples")
        if gif and (out / gif).is_file():
            uri = "data:image/gif;base64," + base64.b64encode((out / gif).read_bytes()).decode("ascii")
            grids.append(f"<figure><img class='samples' alt='{html.escape(key)} samples' src='{uri}'>"
                         f"<figcaption>{html.escape(key)}</figcaption></figure>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>video-zoo shapes bench</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}} tr.floor{{background:#eef}}
figure{{display:inline-block;margin:0 1em 1em 0}} img#curves{{max-width:100%}}
img.samples{{image-rendering:pixelated;width:256px}}</style>
</head><body>
<h1>video-zoo: the shapes benchmark</h1>
<p>Metrics on the in-repo <code>shapes_net</code> detector ({state.data.get('num_samples', '')} generated vs real
clips per model, 95% bootstrap intervals). Lower is better for FVD, KVD and ACD; higher for IS (at most 9) and
PRDC coverage. The shaded rows are two disjoint real sets: the floor a perfect model reaches. Intervals are
percentile bootstraps over resampled feature sets; resampling repeats clips, which raises FVD and KVD, so with few
clips an interval can lie above its point estimate.</p>
<table id="metrics"><thead><tr><th>model</th><th>clips</th><th>steps</th><th>trained parameters</th>
<th>train wall time</th>{head}</tr></thead><tbody>
{''.join(rows)}
</tbody></table>
<h2>Metrics during training</h2>
<img id="curves" alt="metric versus step" src="{_curves(state, keys)}">
<h2>Samples (final checkpoint)</h2>
{''.join(grids)}
</body></html>
"""
    path = out / "report.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page)
    os.replace(tmp, path)
    return path


# -- `zoo bench` --------------------------------------------------------------------------------------------------


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="train every model on shapes, score offline, write an HTML report",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="shapes", help="only shapes (the in-repo detector's data)")
    p.add_argument("--models", nargs="+", default=["all"], metavar="KEY", help="'all' (default) or model keys")
    p.add_argument("--max-steps", type=int, help="training steps per model (default: its shapes.yaml's)")
    p.add_argument("--eval-every", type=int, help="steps between metric evaluations (default: only at the end)")
    p.add_argument("--num-samples", type=int, default=256, help="generated and real clips per evaluation")
    p.add_argument("--bootstrap", type=int, default=100, metavar="K", help="resamples for the final intervals")
    p.add_argument("--out", default="bench", help="bench directory (runs, state, leaderboard, report)")
    p.add_argument("--experiment", metavar="NAME", help="also apply experiments/<key>/NAME.yaml (e.g. tiny)")
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="extra YAML for every model")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="for every model")
    p.set_defaults(run=_run_bench)


def _run_bench(args) -> None:
    for flag in ("max_steps", "eval_every"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ZooError(f"--{flag.replace('_', '-')} must be at least 1")
    run_bench(BenchRequest(data=args.data, models=args.models, out=args.out, max_steps=args.max_steps,
                           eval_every=args.eval_every, num_samples=args.num_samples, bootstrap=args.bootstrap,
                           experiment=args.experiment, configs=args.config, sets=args.set))


__all__ = ["BenchRequest", "plan", "real_floor", "run_bench", "write_report"]
