"""Video prediction (`zoo eval --task predict`): continue held-out contexts, score the best of N futures per frame.

The protocol of SVG (Denton & Fergus, "Stochastic Video Generation with a Learned Prior", ICML 2018, Sec. 4 and its
`generate_svg_lp.py`), used by SAVP (Lee et al. 2018) and DVG (Shrivastava & Shrivastava 2021); see
docs/evaluation-prediction.md:

* S held-out sequences: the first S items of the checkpoint's data at `heldout_data_config` (test split, data seed
  + 1, as `zoo.evaluation.conditional`), each its deterministic evaluation clip of C + P frames;
* per sequence N futures of P frames from `model.predict(first C frames, P, N)`, quantized to uint8 like decoded
  frames (`as_pixels`);
* `psnr` / `ssim` / `lpips`: per predicted frame against the real frame; per sequence the best of the N samples is
  the one with the best mean over the P predicted frames (SVG's script sorts samples by their mean SSIM over the
  future and shows `ordered[-1]`; each metric picks its own best, as SVG's PSNR curves do), then per-step values
  are averaged over sequences. The row's value is the mean over steps; `extra` holds `<metric>_per_step`;
* feature metrics (`fvd`, `kvd`, `prdc` presets): all S * N predicted clips (context as given + future, C + P
  frames) against the S real clips.

Batch b of the S sequences goes to rank b % world with noise seeded by (seed, b): the scores do not depend on the
number of ranks. Metric states are sums, synced once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from einops import rearrange
from torch.utils.data import DataLoader

from zoo.config import DataConfig, heldout_data_config, stable_hash, update_dataclass
from zoo.errors import ZooError
from zoo.evaluation.conditional import FEATURE_METRICS, HeldOutItems, build_conditional_metric, detector_record
from zoo.evaluation.protocol import data_overrides
from zoo.evaluation.request import EvalRequest, EvalResult
from zoo.evaluation.sources import progress
from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.prediction import BestOfN, best_of_n
from zoo.metrics.presets import DEFAULT_PRESET, PRESETS, Preset
from zoo.video_io import from_uint8

FRAME_METRICS = ("psnr", "ssim", "lpips")  # per predicted frame, best of N


@dataclass(frozen=True)
class PredictionProtocol:
    """One published (or CPU-sized) prediction setting."""

    name: str
    context: int  # C, observed frames
    horizon: int  # P, predicted frames
    samples: int  # N, futures per sequence (best of N)
    sequences: int  # S, held-out test sequences
    source: str  # where the numbers come from


PREDICTION_PRESETS = {p.name: p for p in (
    PredictionProtocol("bair_c2p28", 2, 28, 100, 256, "SVG generate_svg_lp.py defaults (n_past 2, n_future 28, "
                                                       "nsample 100, N 256); SAVP's BAIR setting"),
    PredictionProtocol("kth_c10p30", 10, 30, 100, 256, "KTH 10 -> 30 (SVG's KTH release, SAVP); N, S as SVG's script"),
    PredictionProtocol("kth_c10p40", 10, 40, 100, 256, "KTH 10 -> 40 (later papers' tables); N, S as SVG's script"),
    PredictionProtocol("shapes_c2p6", 2, 6, 4, 16, "CPU-sized shapes protocol of the zoo (8 frames: shapes_net's "
                                                     "minimum for fvd_shapes)"),
)}
DEFAULT_FOR_DATA = {"shapes": "shapes_c2p6"}  # the protocol a dataset gets when no flag names one


def resolve_protocol(request: EvalRequest, data_name: str) -> PredictionProtocol:
    """C, P, N, S of the request: `--preset NAME` (a prediction preset) or the dataset's default, with
    `--context`, `--horizon`, `--samples`, `--num-samples` overriding; every one must end up set and >= 1."""
    base = None
    if request.preset in PREDICTION_PRESETS:
        base = PREDICTION_PRESETS[request.preset]
    elif request.preset:
        raise ZooError(f"--preset {request.preset} is not a prediction protocol; valid: "
                       f"{', '.join(PREDICTION_PRESETS)}")
    elif data_name in DEFAULT_FOR_DATA:
        base = PREDICTION_PRESETS[DEFAULT_FOR_DATA[data_name]]
    values = {"context": request.context, "horizon": request.horizon, "samples": request.samples,
              "sequences": request.num_samples}
    flags = {"context": "--context", "horizon": "--horizon", "samples": "--samples", "sequences": "--num-samples"}
    for key, value in values.items():
        if value is None:
            if base is None:
                raise ZooError(f"--task predict on {data_name}: give {flags[key]} (or --preset one of "
                               f"{', '.join(PREDICTION_PRESETS)})")
            values[key] = getattr(base, key)
        elif value < 1:
            raise ZooError(f"{flags[key]} must be at least 1, got {value}")
    changed = base is None or any(values[k] != getattr(base, k) for k in values)
    source = "given on the command line" if changed else base.source
    name = f"c{values['context']}p{values['horizon']}_n{values['samples']}"
    return PredictionProtocol(name, **values, source=source)


def prediction_presets(request: EvalRequest, protocol: PredictionProtocol) -> list[Preset]:
    """One `Preset` per requested metric, named with the protocol (`psnr_c2p28_n100`, `fvd_shapes_c2p6_n4`):
    num_real = S real clips, num_fake = S * N predicted clips, frames = C + P."""
    c, p, n, s = protocol.context, protocol.horizon, protocol.samples, protocol.sequences
    presets = []
    for name in request.metrics:
        if isinstance(name, Preset):
            preset = name
        elif name in FRAME_METRICS:
            detector = "lpips" if name == "lpips" else "none"
            presets.append(Preset(f"{name}_{protocol.name}", name, s, s * n, c + p, 1, detector,
                                  description=f"best-of-{n} {name} per predicted frame, {c} -> {p} frames, {s} "
                                              "held-out sequences"))
            continue
        elif name in PRESETS:
            preset = PRESETS[name]
        elif name in FEATURE_METRICS:
            preset = dataclasses.replace(PRESETS[DEFAULT_PRESET[name]], metric=name)
        else:
            raise ZooError(f"--metric {name}: --task predict scores {', '.join(FRAME_METRICS)} (best of N per "
                           f"frame) or an {' / '.join(FEATURE_METRICS)} preset (all predicted clips vs the real ones)")
        if preset.metric not in FEATURE_METRICS:
            raise ZooError(f"--metric {preset.name} is a {preset.metric} protocol; --task predict takes "
                           f"{', '.join(FRAME_METRICS)} or {', '.join(FEATURE_METRICS)} presets")
        presets.append(dataclasses.replace(preset, name=f"{preset.name}_{protocol.name}", num_real=s, num_fake=s * n,
                                           frames=c + p, frame_stride=1))
    return presets


def prediction_config(request: EvalRequest, run: dict, protocol: PredictionProtocol) -> DataConfig:
    """The checkpoint's data config at the held-out split and seed, clips of C + P frames at stride 1 (`--data`,
    `--data-root`, `--set data.*` may point it elsewhere); the resolution is the model's."""
    data = dict((run.get("experiment") or {}).get("data") or {})
    config = update_dataclass(DataConfig(), data, "data")
    changes = {"frame_stride": 1, **data_overrides(request.data_sets),
               "frames": protocol.context + protocol.horizon}
    if request.data:
        changes["name"] = request.data
    if request.data_root or request.real_dir:
        changes["root"] = request.data_root or request.real_dir
    resolution = (run.get("spec") or {}).get("resolution")
    if request.resolution is not None and request.resolution != resolution:
        raise ZooError(f"--resolution {request.resolution}: a model predicts at the resolution it was trained on "
                       f"({resolution})")
    return heldout_data_config(update_dataclass(config, changes, "data"))


def protocol_values(protocol: PredictionProtocol, config: DataConfig) -> dict:
    """What every row records of the protocol (beside the preset's own fields)."""
    return {"context": protocol.context, "horizon": protocol.horizon, "samples_per_sequence": protocol.samples,
            "sequences": protocol.sequences, "heldout_split": config.split, "heldout_seed": config.seed,
            "frame_stride": config.frame_stride, "resolution": config.resolution, "protocol_source": protocol.source,
            **({"change_frame": config.change_frame} if config.change_frame else {})}


def prediction_fingerprint(protocol: PredictionProtocol, config: DataConfig) -> str:
    """The real clips' fingerprint together with C, P, N, S: two rows compare only under one protocol."""
    from zoo.datasets.cliplist import protocol_fingerprint

    return stable_hash({"clips": protocol_fingerprint(config), "context": protocol.context,
                        "horizon": protocol.horizon, "samples": protocol.samples, "sequences": protocol.sequences})


def predict_batch(model, pixels: torch.Tensor, context: int, horizon: int, samples: int, seed: int, b: int,
                  device: torch.device) -> torch.Tensor:
    """Global batch `b`'s predictions from the first `context` frames of real clips, noise seeded by (seed, b).

    Args:
        pixels: uint8 `[B, T, H, W, C]`, T >= context, the real clips.

    Returns:
        uint8 `[B, N, C + P, H, W, channels]`: what the metrics read (quantized like decoded frames).
    """
    generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)
    observed = from_uint8(pixels[:, :context]).to(device)  # [B, C, T_c, H, W] in [-1, 1]
    with torch.no_grad():
        videos = model.predict(observed, horizon, samples, generator=generator)  # [B, N, C, T_c + P, H, W]
    want = (pixels.shape[0], samples, observed.shape[1], context + horizon, *observed.shape[3:])
    if tuple(videos.shape) != want:
        raise ZooError(f"{model.registry_key}.predict returned {list(videos.shape)}, not {list(want)}")
    return rearrange(as_pixels(videos.flatten(0, 1).float().cpu()), "(b n) t h w c -> b n t h w c", b=len(pixels))


def frame_scores(metric, fake: torch.Tensor, real: torch.Tensor, context: int) -> torch.Tensor:
    """Per-sample, per-predicted-frame scores `[B, N, P]` of `fake` `[B, N, T, H, W, C]` against `real`."""
    b, n = fake.shape[:2]
    future = fake[:, :, context:].flatten(0, 1)
    target = real[:, context:].repeat_interleave(n, dim=0)
    return metric.frame_scores(future, target).reshape(b, n, -1)


def score_prediction(request: EvalRequest, model, run: dict, rank: int, world: int,
                     device: torch.device) -> list[EvalResult]:
    """Every requested metric of the prediction task on this rank's share of the held-out sequences."""
    from zoo.evaluation.conditional import heldout_dataset

    data_name = request.data or ((run.get("experiment") or {}).get("data") or {}).get("name", "")
    protocol = resolve_protocol(request, data_name)
    presets = prediction_presets(request, protocol)
    config = prediction_config(request, run, protocol)
    dataset = heldout_dataset(config, protocol.sequences)
    extractors: dict = {}
    scorers = {p.metric: build_conditional_metric(p, request, extractors, device) for p in presets
               if p.metric in FRAME_METRICS}
    metrics = [BestOfN(protocol.horizon, scorers[p.metric].higher_is_better, sync_on_compute=False).to(device)
               if p.metric in FRAME_METRICS else build_conditional_metric(p, request, extractors, device).to(device)
               for p in presets]
    for preset, metric in zip(presets, metrics):  # every rank holds rows on both sides: the gather never stalls
        if preset.metric in FEATURE_METRICS:
            dim = extractors[preset.detector].dim
            metric.update(features=torch.empty(0, dim, device=device), real=True)
            metric.update(features=torch.empty(0, dim, device=device), real=False)
    s, bs = protocol.sequences, request.batch_size
    every = [list(range(i, min(i + bs, s))) for i in range(0, s, bs)]
    mine = list(range(rank, len(every), world))
    loader = DataLoader(HeldOutItems(dataset, s), batch_sampler=[every[b] for b in mine],
                        num_workers=config.num_workers)
    if rank == 0:
        print(f"{', '.join(p.name for p in presets)}: {s} held-out {config.name} sequences (split {config.split}, "
              f"data seed {config.seed}), {protocol.context} observed -> {protocol.horizon} predicted frames, "
              f"best of {protocol.samples} ({protocol.source})", flush=True)
    first = None
    with progress(s, "predicted held-out", rank) as bar:
        for b, batch in zip(mine, loader):
            real = batch["pixels"]
            fake = predict_batch(model, real, protocol.context, protocol.horizon, protocol.samples, request.seed, b,
                                 device)
            features: dict = {}
            for preset, metric in zip(presets, metrics):
                if preset.metric in FRAME_METRICS:
                    metric.update(frame_scores(scorers[preset.metric], fake, real, protocol.context))
                    continue
                if preset.detector not in features:
                    extractor = extractors[preset.detector]
                    features[preset.detector] = (extractor(real.to(device)), extractor(fake.flatten(0, 1).to(device)))
                metric.update(features=features[preset.detector][0], real=True)
                metric.update(features=features[preset.detector][1], real=False)
            if first is None and rank == 0:
                first = fake[:, 0][:16]
            bar.update(len(real) * world)
    fingerprint = prediction_fingerprint(protocol, config)
    results = []
    for preset, metric in zip(presets, metrics):
        with metric.sync_context(should_sync=world > 1):
            if preset.metric in FRAME_METRICS:
                per_step = metric.compute().reshape(-1)  # torchmetrics squeezes a 1-step result
                values = {preset.metric: float(per_step.mean()), f"{preset.metric}_per_step": per_step.tolist(),
                          "best_of": "per sequence, the sample with the best mean over the predicted frames"}
            else:
                values = {k: float(v) if isinstance(v, (int, float)) else v for k, v in metric.results().items()}
                values["scored_clips"] = "context (as given) + predicted frames, all S * N against the S real"
        values.update(protocol_values(protocol, config))
        results.append(EvalResult(preset.metric, preset, values, None, protocol.sequences,
                                  protocol.sequences * protocol.samples, fingerprint,
                                  detector_record(preset, extractors), "none"))
    if first is not None:
        results[0].values["_samples"] = first  # type: ignore[assignment]
    return results


__all__ = ["PREDICTION_PRESETS", "PredictionProtocol", "best_of_n", "resolve_protocol", "score_prediction"]
