"""What to compute: metric keys -> protocol presets, their metrics, and the data config each group reads."""

from __future__ import annotations

import dataclasses

from torch import nn

from zoo.config import DataConfig, heldout_data_config, parse_set, update_dataclass
from zoo.errors import ZooError
from zoo.evaluation.request import METRIC_KEYS, EvalRequest
from zoo.metrics.feature_metric import VideoFeatureMetric
from zoo.metrics.presets import DEFAULT_PRESET, PRESETS, Preset, for_checkpoint


def resolve_presets(request: EvalRequest, run: dict | None = None) -> list[Preset]:
    """The protocols of `request.metrics`, with the request's counts; named presets scoring the checkpoint whose
    record is `run` take its clip length where the preset follows the model's (`presets.for_checkpoint`)."""
    presets = []
    for name in request.metrics:
        if isinstance(name, Preset):  # Python API: a custom protocol (recorded in full in every row)
            preset = name
        elif name in PRESETS:
            preset = for_checkpoint(PRESETS[name], run or {})
        elif name in METRIC_KEYS:
            preset = PRESETS[request.preset or DEFAULT_PRESET[name]]
            if preset.metric != name and {preset.metric, name} != {"fvd", "kvd"}:
                raise ZooError(f"--preset {preset.name} is a {preset.metric} protocol and cannot score {name}")
            preset = dataclasses.replace(for_checkpoint(preset, run or {}), metric=name)
        else:
            valid = f"{', '.join(METRIC_KEYS)} or a preset: {', '.join(PRESETS)}"
            raise ZooError(f"unknown metric {name!r}; valid: {valid}")
        changes = {}
        if request.num_samples is not None:
            changes["num_fake"] = request.num_samples
        if request.num_real is not None and preset.metric != "is":
            changes["num_real"] = request.num_real
        if request.covariance is not None:
            changes["covariance"] = request.covariance
        presets.append(dataclasses.replace(preset, **changes))
    return presets


def group_key(p: Preset) -> tuple:
    return (p.detector, p.resize, p.aspect, p.frames, p.frame_stride, p.num_real, p.num_fake)


def build_metric(preset: Preset, extractor: nn.Module) -> VideoFeatureMetric:
    """The metric of `preset`. It does not sync on `compute()`: under DDP the caller syncs it once around all its
    values (`results()` reads secondary values from the feature rows directly, which a compute-time sync misses)."""
    from zoo.metrics.fvd import FrechetVideoDistance, KernelVideoDistance
    from zoo.metrics.inception_score import VideoInceptionScore

    common = {"sync_on_compute": False}
    if preset.metric == "fvd":
        return FrechetVideoDistance(extractor, covariance=preset.covariance, **common)
    if preset.metric == "kvd":
        return KernelVideoDistance(extractor, **common)
    if preset.metric in ("prdc", "acd"):
        from zoo.metrics.prdc import PRDC, AverageContentDistance

        return (PRDC if preset.metric == "prdc" else AverageContentDistance)(extractor, **common)
    return VideoInceptionScore(extractor, splits=preset.splits, repeats=preset.repeats,
                               convention=preset.is_convention, **common)


def real_data_config(request: EvalRequest, run: dict, preset: Preset) -> DataConfig:
    base = dict((run.get("experiment") or {}).get("data") or {})
    base.pop("name", None)
    config = update_dataclass(DataConfig(), base, "data")
    config = update_dataclass(config, data_overrides(request.data_sets), "data")
    name = "folder" if request.real_dir else request.data or (run.get("experiment") or {}).get("data", {}).get("name")
    if name is None:
        raise ZooError("say which real data to compare with: --data KEY [--data-root DIR] or --real-dir DIR")
    changes = {"name": name, "frames": preset.frames, "frame_stride": preset.frame_stride}
    if request.real_dir or request.data_root:
        changes["root"] = request.real_dir or request.data_root
    if request.resolution is not None:
        changes["resolution"] = request.resolution
    return update_dataclass(config, changes, "data")


def data_overrides(assignments: list[str]) -> dict:
    """`--set data.KEY=VALUE` of `zoo eval`: data fields the protocol leaves open (decoder, stream,
    max_bad_fraction, ...); the dataset, clip length and stride come from --data and the preset."""
    fields = {}
    for assignment in assignments:
        section, key, value = parse_set(assignment)
        if section != "data":
            raise ZooError(f"zoo eval --set takes data.KEY=VALUE (the real data), got {assignment!r}")
        if key in ("name", "frames", "frame_stride"):
            raise ZooError(f"--set data.{key}: the metric's preset fixes it; choose the data with --data / "
                           "--real-dir and the clip length with --preset")
        fields[key] = value
    return fields


def group_data_config(request: EvalRequest, run: dict, preset: Preset) -> DataConfig:
    """The data config of a metric group: the real data's (which also sizes `--fake-dir` videos), or a plain one
    at the preset's clip length when no real data takes part (IS of a folder)."""
    if preset.metric == "bpd":  # held-out clips: the ones the model trained on would flatter its likelihood
        return heldout_data_config(real_data_config(request, run, preset))
    if preset.num_real or request.ckpt or request.data or request.real_dir:
        return real_data_config(request, run, preset)
    changes = {"frames": preset.frames, "frame_stride": preset.frame_stride}
    if request.resolution:
        changes["resolution"] = request.resolution
    return update_dataclass(DataConfig(), {**data_overrides(request.data_sets), **changes}, "data")


def explain_undefined(values: dict) -> dict:
    """Secondary numbers that are undefined (NaN: a standard error over one block, a std over one split) become
    null with a `<name>_undefined` reason beside them, so the CSV never holds a bare NaN."""
    out = {}
    for key, value in values.items():
        if isinstance(value, float) and value != value:
            out[key] = None
            out[f"{key}_undefined"] = "needs at least 2 blocks or splits of samples; evaluate more samples"
        else:
            out[key] = value
    return out
