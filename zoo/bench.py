"""`zoo bench`: train every registered model on `shapes`, score it offline with the shapes metrics, write a report.

For each model (first stages before the models that need them: `videogpt_vqvae` before `videogpt`) the bench trains
`experiments/<key>/shapes.yaml` (plus any `--config` / `--set`) in segments of `--eval-every` steps, resuming the
run's `last.ckpt` after each segment, and scores the checkpoint with `fvd_shapes`, `kvd_shapes`, `prdc_shapes`,
`is_shapes` and `acd_shapes` (the in-repo `shapes_net` detector: no network, no download) at the model's own clip
length and resolution. The last evaluation adds bootstrap intervals and appends leaderboard rows with full provenance
(`zoo.evaluation`). A real-versus-real row (two disjoint sets of real clips, data seeds 0 and 1) gives the floor of
each clip format; its rows go to the bench's leaderboard too (model `real-vs-real`).

Everything lives in `--out` (default `bench/`): `runs/<key>/` (the training runs), `state.json` (what is done,
replaced atomically after every phase), `leaderboard.csv`, `samples/<key>.gif`, `samples/real-<F>x<R>.gif` (real
clips at each clip format) and `report.html`, a single file with every image and plot embedded, which ranks the
models within each clip format by `zoo.leaderboard.BETTER` (ACD: the closer to the real clips' ACD the better).

Calling the same command again continues where it stopped: finished models are skipped, unfinished ones resume
from their last checkpoint, a larger `--max-steps` trains on. Every reused result is keyed on what it depends on:
training on the config hash (every `--config` / `--set` included; a second stage also on its first stage), scores
and the floor on the sample counts, bootstrap, batch, seeds, clip format, presets and detector checksum. When a key
differs the result is computed again, saying so in one line: a run trained under other settings is moved aside to
`runs/<key>.replaced-<UTC stamp>` and trained from step 0; scores are recomputed from the kept checkpoints.
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
from zoo.leaderboard import TARGET, better_text, finite, image_data_uri, rank_key, write_text_atomic
from zoo.metrics.presets import PRESETS, SHAPES_PRESETS

# model key -> (first-stage model key, the config field that takes its checkpoint)
FIRST_STAGE = {"videogpt": ("videogpt_vqvae", "vqvae_ckpt")}
HEADLINE = "fvd_shapes"
EVAL_SEED = 0  # the sampling seed of every bench evaluation
FLOOR_SEEDS = (0, 1)  # data seeds of the floor's two disjoint real sets
GRID_CLIPS = 16  # clips per sample grid (the evaluation keeps its first 16 generated clips)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def plan(models: list[str]) -> list[str]:
    """The models to train, in order: `all` = every registered model; first stages are added and put first."""
    from zoo.registry import MODELS, load_all

    load_all()
    everything = not models or models == ["all"]
    keys = list(MODELS.keys()) if everything else models
    for key in keys:
        MODELS.get(key)  # unknown keys: one clear error listing the valid ones
    predicting = [key for key in keys if MODELS.get(key).prediction_only]
    if predicting and not everything:
        raise ZooError(f"{predicting[0]} only continues observed frames (video prediction): zoo bench scores "
                       "samples and translations; score it with `zoo eval --task predict`")
    if predicting:
        _say(f"left out (video prediction only, scored by `zoo eval --task predict`): {', '.join(predicting)}")
        keys = [key for key in keys if key not in predicting]
    ordered: list[str] = []
    for key in keys:
        first = FIRST_STAGE.get(key, (None,))[0]
        if first and first not in ordered:
            ordered.append(first)
        if key not in ordered:
            ordered.append(key)
    return ordered


class BenchState:
    """`state.json`: per model its steps, wall time, parameters, metric curve and final values, each with the settings
    it was computed under (`train_key`, `eval_key`); per clip format the real-versus-real floor with its settings."""

    def __init__(self, path: Path):
        self.path = path
        self.data = self._load(path)

    @staticmethod
    def _load(path: Path) -> dict:
        if not path.is_file():
            return {"models": {}, "floor": {}}
        try:
            data = json.loads(path.read_text())
        except (ValueError, OSError) as e:  # UnicodeDecodeError is a ValueError
            raise ZooError(f"{path} is not a bench state ({type(e).__name__}); move it aside or pass another --out"
                           ) from None
        if not (isinstance(data, dict) and isinstance(data.get("models"), dict)
                and isinstance(data.get("floor"), dict)):
            raise ZooError(f"{path} is not a bench state (no 'models' and 'floor' records); move it aside or pass "
                           "another --out")
        return data

    def model(self, key: str) -> dict:
        entry = self.data["models"].get(key)
        if not _well_formed(entry):
            entry = self.data["models"][key] = {"steps": 0, "wall_s": 0.0, "curve": []}
        return entry

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True))


def _well_formed(entry) -> bool:
    """Whether a model record has the fields the bench computes with (a hand-edited one may not)."""
    return (isinstance(entry, dict) and type(entry.get("steps")) is int and finite(entry.get("wall_s")) is not None
            and isinstance(entry.get("curve"), list) and all(isinstance(p, dict) for p in entry["curve"]))


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


# a conditional model's scores: its translations of held-out conditions against their own targets (the feature
# presets on those pairs carry `_heldout` in their names: they are not comparable with the unconditional columns)
CONDITIONAL_COLUMNS = ("fvd_shapes_heldout", "kvd_shapes_heldout", "prdc_shapes_heldout", "psnr", "ssim",
                       "warp_error", "mask_iou")


def metric_of(name: str) -> str:
    """The metric a bench column scores: its preset's first word (`fvd_shapes` -> fvd), or a conditional key."""
    from zoo.metrics.conditional import CONDITIONAL_METRICS

    return name if name in CONDITIONAL_METRICS else name.split("_")[0]


def is_conditional_key(key: str) -> bool:
    """Whether the registered model `key` translates conditions (recorded in state.json, which the report reads)."""
    from zoo.models.base import ConditionalVideoModel
    from zoo.registry import MODELS

    return issubclass(MODELS.get(key), ConditionalVideoModel)


def _conditional(state: BenchState, key: str) -> bool:
    return state.model(key).get("conditional") is True


def headline_of(values: dict) -> tuple[str, float]:
    """The headline column present in `values` (a conditional model's is on held-out pairs) and its value."""
    name = HEADLINE if HEADLINE in values else f"{HEADLINE}_heldout"
    return name, values[name][metric_of(name)]


# -- what a reused result depends on ------------------------------------------------------------------------------


def _json(value):
    """`value` as state.json holds it (tuples as lists), so a stored record compares equal to a fresh one."""
    return json.loads(json.dumps(value, default=str))


def train_key(config, key: str, state: BenchState) -> dict:
    """What a model's trained weights depend on, `train.max_steps` aside (a larger --max-steps trains on): the config
    hash (every --config / --set included) and, for a second stage, the first stage's own key and steps."""
    neutral = dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=1))
    first = None
    if key in FIRST_STAGE:
        name, field = FIRST_STAGE[key]
        neutral = dataclasses.replace(neutral, model=dataclasses.replace(neutral.model, **{field: None}))
        entry = state.model(name)
        first = {"model": name, "train_key": entry.get("train_key"), "steps": entry["steps"]}
    return _json({"config_hash": neutral.config_hash(), "first_stage": first})


def _settings_text(config) -> dict:
    """The resolved config as `section.key -> value`, kept beside `train_key` so a change can be named."""
    d = config.to_dict()
    flat = {f"{section}.{k}": v for section in ("model", "data", "train") for k, v in d[section].items()}
    for moving in ("train.max_steps", "train.run_dir"):
        flat.pop(moving)
    return _json(flat)


def protocol_key(request: BenchRequest, frames: int) -> dict:
    """Everything a bench evaluation's numbers depend on besides the weights: data, clip length, sample counts,
    batch, seeds, the presets' protocol records and the detector's checksum."""
    from zoo.config import stable_hash
    from zoo.metrics.detectors import DETECTOR_WEIGHTS
    from zoo.metrics.detectors.weights import WEIGHTS

    presets = _presets(frames)
    return _json({"data": request.data, "frames": frames, "num_samples": request.num_samples,
                  "bootstrap": request.bootstrap, "batch_size": request.batch_size, "eval_seed": EVAL_SEED,
                  "presets": stable_hash([p.protocol() for p in presets]),
                  "detector_sha256": sorted({WEIGHTS[DETECTOR_WEIGHTS[p.detector]].sha256 for p in presets})})


def floor_key(request: BenchRequest, frames: int, resolution: int) -> dict:
    return {**protocol_key(request, frames), "resolution": resolution, "data_seeds": list(FLOOR_SEEDS)}


def changes(old, new: dict) -> str:
    """The differences between two settings records, for one line: 'num_samples 16 -> 64, model.lr 0.001 -> 0.5'."""
    if not isinstance(old, dict):
        return "recorded without its settings"
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(diffs[:4]) + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")


def _set_aside_run(run_dir: Path) -> Path | None:
    """Rename an earlier run directory to `<name>.replaced-<UTC stamp>` (nothing is deleted); None if none."""
    if not run_dir.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target, n = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}"), 1
    while target.exists():
        target, n = run_dir.with_name(f"{run_dir.name}.replaced-{stamp}-{n}"), n + 1
    os.replace(run_dir, target)
    return target


def _reuse_training(key: str, state: BenchState, out: Path, tkey: dict, settings: dict) -> dict:
    """The model's record when it was trained under `tkey`; else a fresh one, the earlier run moved aside."""
    entry = state.model(key)
    run_dir = out / "runs" / key
    if entry.get("train_key") == tkey or (entry["steps"] == 0 and not run_dir.exists()):
        return entry
    what = changes(entry.get("config"), settings) or f"first stage {changes(entry.get('train_key'), tkey)}"
    moved = _set_aside_run(run_dir)
    _say(f"{key}: trained under other settings ({what}); training again from step 0"
         + (f", the earlier run moved to {moved}" if moved else ""))
    state.data["models"][key] = {"steps": 0, "wall_s": 0.0, "curve": []}
    return state.data["models"][key]


def _step_checkpoint(out: Path, key: str, step: int) -> Path:
    return out / "runs" / key / "checkpoints" / f"step={step:07d}.ckpt"


def _reuse_scores(request: BenchRequest, key: str, entry: dict, out: Path, pkey: dict) -> None:
    """Keep the curve and final scores computed under `pkey`; otherwise drop them and score again the curve steps
    whose checkpoints are kept (the loop in `_train_model` scores the last step)."""
    if entry.get("eval_key") == pkey or not (entry["curve"] or "final" in entry):
        return
    _say(f"{key}: scored under other settings ({changes(entry.get('eval_key'), pkey)}); scoring again")
    earlier = sorted({p.get("step") for p in entry["curve"] if type(p.get("step")) is int and p["step"] <
                      entry["steps"]})
    for name in ("final", "samples", "params"):
        entry.pop(name, None)
    entry["curve"] = []
    for step in earlier:
        ckpt = _step_checkpoint(out, key, step)
        if ckpt.is_file():
            values, _ = _evaluate(request, ckpt, entry["frames"], False, None, conditional=entry["conditional"])
            entry["curve"].append(_curve_point(step, values))
        else:
            _say(f"{key}: curve point at step {step} dropped: its checkpoint {ckpt.name} is gone")


# -- training and scoring -----------------------------------------------------------------------------------------


def _evaluate(request: BenchRequest, ckpt: Path, frames: int, final: bool, leaderboard: Path | None,
              conditional: bool = False):
    from zoo.evaluation import EvalRequest, evaluate
    if conditional:  # translations of held-out conditions against their targets: pairs, no intervals
        metrics, num_real, bootstrap = [*SHAPES_PRESETS[:3], *CONDITIONAL_COLUMNS[3:]], None, 0
    else:
        metrics, num_real, bootstrap = _presets(frames), request.num_samples, request.bootstrap if final else 0
    results = evaluate(EvalRequest(
        metrics=metrics, ckpt=str(ckpt), data=request.data, num_samples=request.num_samples, num_real=num_real,
        batch_size=request.batch_size, bootstrap=bootstrap, leaderboard=str(leaderboard) if leaderboard else None,
        samples_gif=False, seed=EVAL_SEED,
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


def _curve_point(step: int, values: dict) -> dict:
    return {"step": step, **{name: v[metric_of(name)] for name, v in values.items()}}


def _checkpoint_step(ckpt: Path) -> int:
    from zoo.models.base import checkpoint_meta, read_checkpoint

    return int(checkpoint_meta(read_checkpoint(ckpt), source=str(ckpt))["iteration"]) if ckpt.is_file() else 0


def _write_grid(pixels: torch.Tensor, path: Path) -> Path:
    """A uint8 `[B, T, H, W, C]` batch as one GIF grid (the report enlarges it on screen)."""
    from zoo.video_io import from_uint8, make_grid, write_video

    return write_video(make_grid(from_uint8(pixels)), path)


def _train_model(request: BenchRequest, key: str, state: BenchState, out: Path) -> None:
    from zoo.training import fit

    config, total = _config(request, key, state, out)
    tkey, settings = train_key(config, key, state), _settings_text(config)
    entry = _reuse_training(key, state, out, tkey, settings)
    if entry["steps"] > total:
        raise ZooError(f"{key}: {out / 'runs' / key} has trained {entry['steps']} steps, more than --max-steps "
                       f"{total}; pass --max-steps {entry['steps']} or more, or another --out")
    entry.update(train_key=tkey, config=settings, total_steps=total, frames=eval_frames(config),
                 resolution=config.data.resolution, conditional=is_conditional_key(key))
    pkey = protocol_key(request, entry["frames"])
    _reuse_scores(request, key, entry, out, pkey)
    entry["eval_key"] = pkey
    state.save()
    if entry["steps"] >= total and "final" in entry:
        _say(f"{key}: done earlier ({entry['steps']} steps), skipped")
        return
    every = request.eval_every or total
    ckpt = out / "runs" / key / "checkpoints" / "last.ckpt"
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
        kind = "final" + ("" if entry.get("conditional") else ", with intervals") if final else "curve point"
        _say(f"{key}: evaluating step {target} ({kind})")
        start = time.time()
        values, samples = _evaluate(request, ckpt, entry["frames"], final, out / "leaderboard.csv" if final
                                    else None, conditional=entry["conditional"])
        entry["eval_s"] = entry.get("eval_s", 0.0) + time.time() - start
        entry["curve"] = [p for p in entry["curve"] if p.get("step") != target] + [_curve_point(target, values)]
        if final:
            from zoo.models import load_model

            entry["params"] = sum(p.numel() for p in load_model(str(ckpt)).parameters() if p.requires_grad)
            entry["final"] = values
            if samples is not None:
                entry["samples"] = os.path.relpath(_write_grid(samples, out / "samples" / f"{key}.gif"), out)
        state.save()
        _say("{}: {} = {:.3f} at step {}".format(key, *headline_of(values), target))


def real_clips(request: BenchRequest, frames: int, resolution: int, seed: int) -> torch.Tensor:
    """`--num-samples` real clips of `request.data` with data seed `seed`: uint8 `[N, T, H, W, C]`."""
    from zoo.config import DataConfig
    from zoo.datasets import build_dataset

    n = request.num_samples
    dataset = build_dataset(request.data, DataConfig(name=request.data, frames=frames, resolution=resolution,
                                                     seed=seed, num_videos=max(n, 1)))
    return torch.stack([dataset.pixels_at(i, 0) for i in range(n)])


def real_floor(request: BenchRequest, frames: int, resolution: int, sets: list[torch.Tensor] | None = None) -> list:
    """The shapes metrics of one set of real clips against a disjoint one (data seeds `FLOOR_SEEDS`), as
    `EvalResult`s (the second set in the generated role)."""
    from zoo.config import stable_hash
    from zoo.evaluation import EvalResult
    from zoo.evaluation.protocol import build_metric, explain_undefined
    from zoo.metrics.detectors import build_extractor

    sets = sets if sets is not None else [real_clips(request, frames, resolution, s) for s in FLOOR_SEEDS]
    n = len(sets[0])
    fingerprint = stable_hash({"data": request.data, "frames": frames, "resolution": resolution, "n": n,
                               "seeds": list(FLOOR_SEEDS)})
    results, extractors = [], {}
    for preset in _presets(frames):
        extractor = extractors.setdefault(preset.detector, build_extractor(preset.detector))
        metric = build_metric(preset, extractor)
        for i in range(0, n, request.batch_size):
            metric.update(sets[0][i : i + request.batch_size], real=True)
            metric.update(sets[1][i : i + request.batch_size], real=False)
        interval = tuple(metric.bootstrap(request.bootstrap)) if request.bootstrap else None
        results.append(EvalResult(preset.metric, preset, explain_undefined(metric.results()), interval, n, n,
                                  fingerprint, extractor.info.to_dict(), "none"))
    return results


def _floor_rows(request: BenchRequest, results: list, frames: int, resolution: int) -> list[dict]:
    """Leaderboard rows of the floor (model `real-vs-real`), so `zoo leaderboard` shows it beside the models."""
    from zoo.evaluation import EvalRequest
    from zoo.evaluation.report import code_version
    from zoo.leaderboard import FLOOR_MODEL, make_row

    eval_request = EvalRequest(metrics=list(SHAPES_PRESETS), data=request.data, num_samples=request.num_samples,
                               num_real=request.num_samples, leaderboard=None, seed=EVAL_SEED)
    run = {"model_name": FLOOR_MODEL, "experiment": {"data": {"name": request.data, "split": "train", "frames": frames,
                                                              "resolution": resolution, "seed": FLOOR_SEEDS[0]}}}
    return [make_row(r, eval_request, run, code_version()) for r in results]


def _measure_floor(request: BenchRequest, frames: int, resolution: int, settings: dict, out: Path) -> dict:
    """The floor's record for state.json (its values, the settings and a grid of the real clips), its rows appended
    to the bench's leaderboard."""
    from zoo.leaderboard import append_or_set_aside

    sets = [real_clips(request, frames, resolution, s) for s in FLOOR_SEEDS]
    results = real_floor(request, frames, resolution, sets)
    values = {r.preset.name: {**{k: v for k, v in r.values.items() if finite(v) is not None},
                              "interval": list(r.interval) if r.interval else None} for r in results}
    grid = _write_grid(sets[0][:GRID_CLIPS], out / "samples" / f"real-{frames}x{resolution}.gif")
    print(append_or_set_aside(out / "leaderboard.csv", _floor_rows(request, results, frames, resolution)))
    return {"settings": settings, "values": values, "samples": os.path.relpath(grid, out)}


def _floors(request: BenchRequest, keys: list[str], state: BenchState, out: Path) -> None:
    """One floor per clip format the planned models are scored at, measured again whenever its settings changed."""
    for frames, resolution in sorted({(state.model(k)["frames"], state.model(k)["resolution"]) for k in keys}):
        name, settings = f"{frames}x{resolution}", floor_key(request, frames, resolution)
        earlier = state.data["floor"].get(name)
        if isinstance(earlier, dict) and earlier.get("settings") == settings:
            continue
        why = f": measured under other settings ({changes(earlier.get('settings'), settings)})" if isinstance(
            earlier, dict) else ""
        _say(f"real-vs-real floor at {name}{why}; measuring")
        state.data["floor"][name] = _measure_floor(request, frames, resolution, settings, out)
        state.save()


def run_bench(request: BenchRequest) -> Path:
    """Train, evaluate and report every planned model; returns the report's path."""
    if request.data != "shapes":
        raise ZooError(f"zoo bench scores with the in-repo shapes detector and runs on --data shapes only, "
                       f"not {request.data!r}")
    if request.num_samples < 10:
        raise ZooError("--num-samples must be at least 10 (PRDC uses 5 nearest neighbours)")
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out} is a file; the bench needs a folder (it holds runs, state and the report)")
    out.mkdir(parents=True, exist_ok=True)
    state = BenchState(out / "state.json")
    state.data["num_samples"] = request.num_samples
    keys = plan(request.models)
    _say(f"plan: {', '.join(keys)} -> {out}")
    for key in keys:
        _train_model(request, key, state, out)
    _floors(request, keys, state, out)
    path = write_report(state, keys, out)
    _say(f"report: {path}")
    return path


# -- the HTML report ----------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _curve_points(curve, name: str) -> tuple[list[float], list[float]]:
    """The finite (step, value) points of one metric's curve."""
    points = [(finite(p.get("step")), finite(p.get(name))) for p in curve if isinstance(p, dict)]
    points = sorted((s, v) for s, v in points if s is not None and v is not None)
    return [s for s, _ in points], [v for _, v in points]


def _curves(state: BenchState, keys: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SHAPES_PRESETS), figsize=(4 * len(SHAPES_PRESETS), 3.2))
    for ax, name in zip(axes, SHAPES_PRESETS):
        for key in keys:
            steps, values = _curve_points(state.model(key)["curve"], name)
            if steps:
                ax.plot(steps, values, marker="o", label=key)
        ax.set_title(f"{name} ({better_text(name.split('_')[0])})", fontsize=8)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    uri = _png(fig)
    plt.close(fig)
    return uri


def _number(value, spec: str = ".3f") -> str:
    """A number as `spec` formats it; anything else (from a hand-edited state.json) as escaped text."""
    number = finite(value)
    if number is not None:
        return format(number, spec)
    return "-" if value is None else html.escape(str(value))


def _scores(values, name: str) -> dict:
    """One preset's record of a model's or the floor's final values; {} where there is none."""
    record = values.get(name) if isinstance(values, dict) else None
    return record if isinstance(record, dict) else {}


def _rank(values, name: str) -> float | None:
    v = _scores(values, name)
    metric = metric_of(name)
    return rank_key(metric, v.get(metric), v)


def _cell(values, name: str, place: int | None = None) -> str:
    v = _scores(values, name)
    metric = metric_of(name)
    if metric not in v:
        return "<td>-</td>"
    text = _number(v[metric])
    if place is not None:
        text = (f"<b>{text}</b>" if place == 1 else text) + f" <small>#{place}</small>"
    interval = v.get("interval")
    if isinstance(interval, list) and len(interval) == 2:
        text += f"<br><small>[{_number(interval[0])}, {_number(interval[1])}]</small>"
    if metric == "prdc":
        text += (f"<br><small>P {_number(v.get('precision'), '.2f')} R {_number(v.get('recall'), '.2f')} "
                 f"D {_number(v.get('density'), '.2f')}</small>")
    if metric in TARGET and TARGET[metric] in v:
        text += f"<br><small>real {_number(v[TARGET[metric]])}</small>"
    return f"<td>{text}</td>"


def _places(finals: dict[str, dict], name: str) -> dict[str, int]:
    """Each model's place for one preset under the ranking rule (1 = best; ties share a place; unrankable: none)."""
    keys = {key: _rank(values, name) for key, values in finals.items()}
    ranked = [k for k in keys.values() if k is not None]
    return {key: 1 + sum(other < k for other in ranked) for key, k in keys.items() if k is not None}


def _clip_format(entry: dict) -> tuple[str, str]:
    return str(entry.get("frames")), str(entry.get("resolution"))


def _groups(state: BenchState, keys: list[str]) -> dict[tuple[str, str], list[str]]:
    """Clip format (frames, resolution) -> the planned models scored at it, best headline first: numbers are compared
    (and ranked) within a clip format only."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        groups.setdefault(_clip_format(state.model(key)), []).append(key)
    for members in groups.values():
        rank = {key: _rank(state.model(key).get("final"), HEADLINE) for key in members}
        members.sort(key=lambda k: (rank[k] is None, rank[k] or 0.0))
    return dict(sorted(groups.items(), key=lambda item: (len(item[0][1]), item[0][1], len(item[0][0]), item[0][0])))


def _floor_of(state: BenchState, frames: str, resolution: str) -> dict:
    floor = state.data["floor"].get(f"{frames}x{resolution}")
    return floor if isinstance(floor, dict) else {}


def _format_text(frames: str, resolution: str) -> str:
    return f"{html.escape(resolution)}^2 x {html.escape(frames)}"


def _conditional_table(state: BenchState, keys: list[str]) -> str:
    """The conditional models' own table (translations of held-out conditions vs their targets), or ''."""
    members = [key for key in keys if _conditional(state, key)]
    if not members:
        return ""
    finals = {key: state.model(key).get("final") for key in members}
    places = {name: _places(finals, name) for name in CONDITIONAL_COLUMNS}
    head = "".join(f"<th>{n}<br><small>{html.escape(better_text(metric_of(n)))}</small></th>"
                   for n in CONDITIONAL_COLUMNS)
    rows = [f"<tr><td>{html.escape(key)}</td><td>{_format_text(*_clip_format(state.model(key)))}</td>"
            f"<td>{_number(state.model(key)['steps'], '.0f')}</td>"
            + "".join(_cell(finals[key], n, places[n].get(key)) for n in CONDITIONAL_COLUMNS) + "</tr>"
            for key in members]
    return (f"<h2>Conditional models</h2><p>Translations of {_number(state.data.get('num_samples'), '.0f')} held-out "
            "conditions (test split, data seed + 1) against their own real targets: feature metrics on those pairs, "
            "PSNR / SSIM per frame, the warping error with the targets' true flow, and the mask IoU of the outputs "
            "re-segmented by <code>shapes_seg</code>. Not comparable with the table above (those models see no "
            "condition).</p><table id='conditional'><thead><tr><th>model</th><th>clips</th><th>steps</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _table_rows(state: BenchState, groups: dict) -> list[str]:
    rows = []
    for (frames, resolution), members in groups.items():
        members = [key for key in members if not _conditional(state, key)]  # they have their own table
        finals = {key: state.model(key).get("final") for key in members}
        places = {name: _places(finals, name) for name in SHAPES_PRESETS}
        for key in members:
            e = state.model(key)
            params = finite(e.get("params"))
            rows.append(f"<tr><td>{html.escape(key)}</td><td>{_format_text(frames, resolution)}</td>"
                        f"<td>{_number(e['steps'], '.0f')}</td>"
                        f"<td>{_number(params / 1e6 if params is not None else None, '.2f')} M</td>"
                        f"<td>{_number(e['wall_s'] / 60, '.1f')} min</td>"
                        + "".join(_cell(e.get("final"), n, places[n].get(key)) for n in SHAPES_PRESETS) + "</tr>")
        values = _floor_of(state, frames, resolution).get("values")
        if isinstance(values, dict):
            rows.append(f"<tr class='floor'><td>real vs real (floor)</td><td>{_format_text(frames, resolution)}</td>"
                        "<td>-</td><td>-</td><td>-</td>" + "".join(_cell(values, n) for n in SHAPES_PRESETS) + "</tr>")
    return rows


def _figure(out: Path, relative, caption: str, css: str = "samples") -> str:
    """A grid GIF from the bench's own samples/ folder as an embedded figure; a note where it cannot be shown."""
    if not isinstance(relative, str):
        return ""
    uri, why = image_data_uri(out / relative, out / "samples")
    if uri is None:
        return f"<figure><figcaption>{html.escape(caption)}: not shown ({html.escape(why)})</figcaption></figure>"
    return (f"<figure><img class='{css}' alt='{html.escape(caption)}' src='{uri}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _sample_rows(state: BenchState, groups: dict, out: Path) -> list[str]:
    """Per clip format: a grid of real clips first, then each model's samples at that format, to compare by eye."""
    parts = []
    for (frames, resolution), members in groups.items():
        parts.append(f"<h3>{_format_text(frames, resolution)}</h3><div>")
        real = _floor_of(state, frames, resolution).get("samples")
        parts.append(_figure(out, real, "real clips", css="samples real") if real else "")
        parts += [_figure(out, state.model(key).get("samples"), key) for key in members
                  if state.model(key).get("samples")]
        parts.append("</div>")
    return parts


def _rules_text() -> str:
    return "; ".join(f"{html.escape(name)}: {html.escape(better_text(name.split('_')[0]))}" for name in SHAPES_PRESETS)


def write_report(state: BenchState, keys: list[str], out: Path) -> Path:
    """`report.html`: one self-contained page (GIFs and plots as data URIs). Every field from state.json is escaped
    or formatted as a number, and images are read only from the bench's own `samples/` folder."""
    groups = _groups(state, keys)
    head = "".join(f"<th>{n}<br><small>{html.escape(better_text(n.split('_')[0]))}</small></th>"
                   for n in SHAPES_PRESETS)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>video-zoo shapes bench</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}}
td{{white-space:nowrap}} tr.floor{{background:#eef}}
figure{{display:inline-block;margin:0 1em 1em 0}} img#curves{{max-width:100%}}
img.samples{{image-rendering:pixelated;width:256px}} img.real{{outline:3px solid #88c}}</style>
</head><body>
<h1>video-zoo: the shapes benchmark</h1>
<p>Metrics on the in-repo <code>shapes_net</code> detector ({_number(state.data.get('num_samples'), '.0f')} generated vs
real clips per model, 95% bootstrap intervals). Which values are better ({_rules_text()}). Models are ranked by that
rule within each clip format (#1 in bold: the best of that column); rows follow the headline {HEADLINE}. The shaded
rows are two disjoint real sets: the floor a perfect model reaches (for ACD, the real clips' own ACD is the target).
Intervals are percentile bootstraps over resampled feature sets; resampling repeats clips, which raises FVD and KVD,
so with few clips an interval can lie above its point estimate.</p>
<table id="metrics"><thead><tr><th>model</th><th>clips</th><th>steps</th><th>trained parameters</th>
<th>train wall time</th>{head}</tr></thead><tbody>
{''.join(_table_rows(state, groups))}
</tbody></table>
{_conditional_table(state, keys)}
<h2>Metrics during training</h2>
<img id="curves" alt="metric versus step" src="{_curves(state, keys)}">
<h2>Samples (final checkpoint) beside real clips</h2>
{''.join(_sample_rows(state, groups, out))}
</body></html>
"""
    path = out / "report.html"
    write_text_atomic(path, page)
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
