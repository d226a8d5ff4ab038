"""Conditional models (vid2vid and kin): translate the held-out clips' conditions, compare with their real targets.

The protocol (docs/evaluation-conditional.md): the held-out clips are the first N items of the checkpoint's data at
`heldout_data_config` (test split, data seed + 1: on procedural `shapes` the training seed would repeat the training
videos), each item's deterministic evaluation clip at the model's clip length, with the condition kind it was trained
on. Batch b of the N clips goes to rank b % world and is translated with noise seeded by (seed, b), so the outputs do
not depend on the number of ranks. Each output is quantized to uint8 exactly like a decoded frame (`as_pixels`) and
scored against its own target:

* `psnr`, `ssim`, `lpips`: fidelity to the target, per frame;
* `warp_error`: temporal consistency, with the targets' flow and non-occlusion mask: the true ones on `shapes`, the
  user's flow files on a `paired` folder that has them (the row records which);
* `mask_iou`: faithfulness to the condition, re-segmenting the outputs (shapes);
* feature metrics (`fvd`, `kvd`, `prdc` and their presets): detector features of the outputs against those of the
  same N real targets (not a cached set of other clips: the pairs are the protocol).
"""

from __future__ import annotations

import dataclasses

import torch
from torch.utils.data import DataLoader, Dataset

from zoo.config import DataConfig, heldout_data_config, update_dataclass
from zoo.errors import ZooError
from zoo.evaluation.protocol import data_overrides, explain_undefined
from zoo.evaluation.request import METRIC_KEYS, EvalRequest, EvalResult
from zoo.evaluation.sources import progress
from zoo.metrics.conditional import CONDITIONAL_METRICS as CONDITIONAL_KEYS
from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.presets import DEFAULT_PRESET, PRESETS, Preset

FEATURE_METRICS = ("fvd", "kvd", "prdc")  # detector features of outputs vs their targets
DEFAULT_HELDOUT = 256  # held-out clips when neither --num-samples nor a feature preset says how many
# what each metric reads from the held-out items besides the clip, and who provides it
NEEDS = {"warp_error": ("flow", "flow_valid"), "mask_iou": ("segmentation",)}


def is_conditional(run: dict) -> bool:
    """Whether the checkpoint record `run` holds a conditional model (one that translates, not samples)."""
    from zoo.models.base import ConditionalVideoModel
    from zoo.registry import MODELS, load_all

    if not run.get("model_name"):
        return False
    load_all()
    return issubclass(MODELS.get(run["model_name"]), ConditionalVideoModel)


def refuse_conditional_keys(request: EvalRequest, run: dict) -> None:
    """An unconditional checkpoint or a folder of videos asked for a conditional metric: one line saying why."""
    asked = [m for m in request.metrics if isinstance(m, str) and m in CONDITIONAL_KEYS]
    if asked:
        what = f"{run['model_name']} (an unconditional model)" if run.get("model_name") else "a folder of videos"
        raise ZooError(f"--metric {asked[0]} compares a conditional model's translations with their real targets; "
                       f"{what} has no conditions to translate: use {', '.join(METRIC_KEYS)} or a preset")


def conditional_presets(request: EvalRequest, run: dict) -> list[Preset]:
    """The protocol of every requested metric for a conditional checkpoint: N held-out clips at the model's clip
    length, N = --num-samples, else the first feature preset's generated count, else `DEFAULT_HELDOUT`."""
    frames = int((run.get("spec") or {}).get("frames") or 0)
    feature = []
    for name in request.metrics:
        if isinstance(name, Preset):
            feature.append(name)
        elif name in PRESETS:
            feature.append(PRESETS[name])
        elif name in FEATURE_METRICS:
            preset = PRESETS[request.preset or DEFAULT_PRESET[name]]
            feature.append(dataclasses.replace(preset, metric=name))
        elif name not in CONDITIONAL_KEYS:
            valid = ", ".join((*CONDITIONAL_KEYS, *FEATURE_METRICS))
            raise ZooError(f"--metric {name}: a conditional model ({run.get('model_name')}) is scored with {valid} "
                           "or an fvd / kvd / prdc preset (its translations against their targets)")
    for preset in feature:
        if preset.metric not in FEATURE_METRICS:
            raise ZooError(f"--metric {preset.name} is a {preset.metric} protocol; a conditional model is scored "
                           f"against its targets with {', '.join(FEATURE_METRICS)} presets")
    num = request.num_samples or (feature[0].num_fake if feature else DEFAULT_HELDOUT)
    presets = []
    for name in request.metrics:
        if isinstance(name, str) and name in CONDITIONAL_KEYS:
            detector = "shapes_seg" if name == "mask_iou" else "lpips" if name == "lpips" else "none"
            presets.append(Preset(name, name, num, num, frames, 1, detector,
                                  description=f"{name} of {num} held-out translations against their targets"))
    for preset in feature:
        name = preset.name if preset.name.endswith("_heldout") else f"{preset.name}_heldout"
        presets.append(dataclasses.replace(preset, name=name, num_real=num, num_fake=num, frames=frames,
                                           frame_stride=1))
    return presets


def heldout_config(request: EvalRequest, run: dict) -> DataConfig:
    """The checkpoint's data config at the held-out split and seed, its own clip length and condition; `--data`,
    `--data-root` and `--set data.*` may point it elsewhere (a paired folder's held-out copy)."""
    data = dict((run.get("experiment") or {}).get("data") or {})
    config = update_dataclass(DataConfig(), data, "data")
    changes = {**data_overrides(request.data_sets), "frames": int(run["spec"]["frames"]), "frame_stride": 1}
    if request.data:
        changes["name"] = request.data
    if request.data_root or request.real_dir:
        changes["root"] = request.data_root or request.real_dir
    if request.resolution is not None and request.resolution != run["spec"]["resolution"]:
        raise ZooError(f"--resolution {request.resolution}: a conditional model translates at the resolution it was "
                       f"trained on ({run['spec']['resolution']})")
    config = update_dataclass(config, changes, "data")
    if config.condition != (run.get("spec") or {}).get("condition"):
        raise ZooError(f"data.condition={config.condition}, but the checkpoint translates "
                       f"{run['spec'].get('condition')} conditions")
    return heldout_data_config(config)


class HeldOutItems(Dataset):
    """The first `num` items of a held-out dataset, each its deterministic evaluation clip (`raw_item(i)`): uint8
    `pixels` beside the float `condition` and what the metrics read (flow, masks, segmentation)."""

    def __init__(self, dataset, num: int):
        self.dataset, self.num = dataset, num

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> dict:
        return self.dataset.raw_item(index)


def heldout_dataset(config: DataConfig, num: int):
    from zoo.datasets import build_dataset

    dataset = build_dataset(config.name, config)
    if len(dataset) < num:
        raise ZooError(f"the held-out data ({config.name}, split {config.split}, seed {config.seed}) holds "
                       f"{len(dataset)} clips but {num} were asked; pass --num-samples {len(dataset)} or fewer")
    return dataset


def check_needs(presets: list[Preset], item: dict, config: DataConfig) -> None:
    """Each metric finds what it reads in the held-out items, or one line saying which data provides it."""
    for preset in presets:
        missing = [key for key in NEEDS.get(preset.metric, ()) if key not in item]
        if missing:
            where = ("shapes items carry the exact ones; paired items carry a user-supplied flow when the folder "
                     "holds flow files, flow/<name>.npz beside source/ and target/: docs/datasets.md#paired-folders"
                     if preset.metric == "warp_error" else "shapes items carry the exact ones")
            raise ZooError(f"--metric {preset.metric} needs the targets' {' and '.join(missing)}, which {config.name} "
                           f"items do not carry ({where})")


def build_conditional_metric(preset: Preset, request: EvalRequest, extractors: dict, device: torch.device):
    """The torchmetrics object of one preset; feature metrics share one detector per detector key (`extractors`)."""
    from zoo.metrics.conditional import MaskIoU, VideoPSNR, VideoSSIM, WarpError

    common = {"sync_on_compute": False}  # synced once around all of a metric's values, as the feature metrics
    if preset.metric == "psnr":
        return VideoPSNR(**common)
    if preset.metric == "ssim":
        return VideoSSIM(**common)
    if preset.metric == "warp_error":
        return WarpError(**common)
    if preset.metric == "mask_iou":
        return MaskIoU(**common)
    if preset.metric == "lpips":
        from zoo.metrics.lpips import VideoLPIPS

        return VideoLPIPS(weights=request.lpips_weights, **common)
    from zoo.evaluation.protocol import build_metric
    from zoo.evaluation.unconditional import build_detector

    if preset.detector not in extractors:
        extractors[preset.detector] = build_detector(request, preset, device)
    return build_metric(preset, extractors[preset.detector])


def update(metric, preset: Preset, fake: torch.Tensor, real: torch.Tensor, batch: dict, extractors: dict,
           features: dict, device: torch.device) -> None:
    """Add one batch of outputs `fake` and targets `real` (uint8 `[B, T, H, W, C]`) to `metric`."""
    if preset.metric in ("psnr", "ssim", "lpips"):
        metric.update(fake.to(device), real.to(device))
    elif preset.metric == "warp_error":
        metric.update(fake.to(device), batch["flow"].to(device), batch["flow_valid"].to(device))
    elif preset.metric == "mask_iou":
        metric.update(fake.to(device), batch["segmentation"].to(device))
    else:  # one detector pass per detector and side, shared by the metrics that read it
        if preset.detector not in features:
            extractor = extractors[preset.detector]
            features[preset.detector] = (extractor(real.to(device)), extractor(fake.to(device)))
        real_features, fake_features = features[preset.detector]
        metric.update(features=real_features, real=True)
        metric.update(features=fake_features, real=False)


def translate_batch(model, batch: dict, seed: int, b: int, device: torch.device) -> torch.Tensor:
    """Global batch `b`'s translations, uint8 `[B, T, H, W, C]`, with noise seeded by (seed, b)."""
    generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + b)
    with torch.no_grad():
        videos = model.translate(batch["condition"].to(device), generator=generator)
    return as_pixels(videos.float().cpu())


def score_conditional(request: EvalRequest, model, run: dict, rank: int, world: int,
                      device: torch.device) -> list[EvalResult]:
    """Every requested metric of a conditional checkpoint, on this rank's share of the held-out clips."""
    from zoo.datasets.cliplist import protocol_fingerprint

    presets = conditional_presets(request, run)
    num = presets[0].num_fake
    config = heldout_config(request, run)
    dataset = heldout_dataset(config, num)
    check_needs(presets, dataset.raw_item(0), config)
    extractors: dict = {}
    metrics = [build_conditional_metric(p, request, extractors, device).to(device) for p in presets]
    for preset, metric in zip(presets, metrics):  # every rank holds rows on both sides: the gather never stalls
        if preset.metric in FEATURE_METRICS:
            dim = extractors[preset.detector].dim
            metric.update(features=torch.empty(0, dim, device=device), real=True)
            metric.update(features=torch.empty(0, dim, device=device), real=False)
    every = [list(range(i, min(i + request.batch_size, num))) for i in range(0, num, request.batch_size)]
    mine = list(range(rank, len(every), world))
    loader = DataLoader(HeldOutItems(dataset, num), batch_sampler=[every[b] for b in mine],
                        num_workers=config.num_workers)
    if rank == 0:
        names = ", ".join(p.name for p in presets)
        print(f"{names}: {num} held-out {config.name} clips (split {config.split}, data seed {config.seed}), "
              f"{config.frames} frames, {config.condition} conditions -> translations vs their targets", flush=True)
    first = None
    with progress(num, "translated held-out", rank) as bar:
        for b, batch in zip(mine, loader):
            fake, real = translate_batch(model, batch, request.seed, b, device), batch["pixels"]
            features: dict = {}
            for preset, metric in zip(presets, metrics):
                update(metric, preset, fake, real, batch, extractors, features, device)
            if first is None and rank == 0:
                first = fake[:16]
            bar.update(len(fake) * world)
    fingerprint = protocol_fingerprint(config)
    results = []
    for preset, metric in zip(presets, metrics):
        with metric.sync_context(should_sync=world > 1):
            values = metric.results() if hasattr(metric, "results") else {preset.metric: float(metric.compute())}
        values = explain_undefined({k: float(v) if isinstance(v, (int, float)) else v for k, v in values.items()})
        values.update({"condition": config.condition, "heldout_split": config.split, "heldout_seed": config.seed})
        if preset.metric == "warp_error":
            values["flow"] = getattr(dataset, "flow_source", None) or f"true flow of the {config.name} targets"
        info = detector_record(preset, extractors)
        results.append(EvalResult(preset.metric, preset, values, None, num, num, fingerprint, info, "none"))
    if first is not None:
        results[0].values["_samples"] = first  # type: ignore[assignment]
    return results


def detector_record(preset: Preset, extractors: dict) -> dict:
    """What the row records of the network a metric read (nothing for pixel metrics)."""
    if preset.detector in extractors:
        return extractors[preset.detector].info.to_dict()
    if preset.metric == "mask_iou":
        from zoo.metrics.detectors.shapes_seg import weights_record

        return weights_record()
    return {"detector": "none", "weights": "", "sha256": "", "verified": True}

