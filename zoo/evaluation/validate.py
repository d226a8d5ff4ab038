"""Every input of an evaluation checked before any expensive work, and the checkpoint it scores."""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.evaluation.conditional import (
    check_needs,
    conditional_presets,
    heldout_config,
    heldout_dataset,
    is_conditional,
    refuse_conditional_keys,
)
from zoo.evaluation.protocol import group_data_config, group_key, resolve_presets
from zoo.evaluation.request import EvalRequest
from zoo.evaluation.sources import GeneratedFolder, real_clips
from zoo.metrics.detectors.weights import sha256_of
from zoo.metrics.presets import Preset, too_few_samples


def load_run(request: EvalRequest):
    """`(model or None, checkpoint record)` of the request."""
    if request.ckpt is None:
        return None, {}
    from zoo.models import load_model
    from zoo.models.base import checkpoint_meta, read_checkpoint

    meta = checkpoint_meta(read_checkpoint(request.ckpt), source=request.ckpt)
    model = load_model(request.ckpt, map_location=request.device if request.device != "cuda" else "cpu")
    return model, {**meta, "sha256": sha256_of(request.ckpt)}


def _check_weights_file(path: str, flag: str, entry) -> None:
    """`path` exists and loads as `entry`'s kind of file; otherwise one line saying what it is instead."""
    import zipfile

    from zoo.metrics.detectors.weights import check_structure

    file = Path(path)
    if not file.is_file():
        raise ZooError(f"{flag} {file} does not exist")
    if file.stat().st_size == 0:
        raise ZooError(f"{flag} {file} is empty")
    try:
        if entry.name.startswith("i3d"):  # either I3D file is accepted: a TorchScript or a pytorch-i3d state dict
            from zoo.metrics.detectors import load_i3d

            load_i3d(file)
        else:
            check_structure(entry, file)
    except ZooError as e:
        from zoo.safe_load import globals_in

        if not zipfile.is_zipfile(file) and not globals_in(file):
            why = "it is not a PyTorch or NumPy archive (truncated, or another kind of file)"
        else:
            why = str(e).split(". ")[0]  # the loader's first sentence; PyTorch appends paragraphs of advice
        raise ZooError(f"{flag} {file} cannot be used as {entry.name} weights: {why}") from None


def check_detector(detector: str, request: EvalRequest) -> None:
    """The detector's weights (and the C3D's mean clip) are there, or are fetched now, and are the right kind."""
    from zoo.metrics.detectors import DETECTOR_WEIGHTS
    from zoo.metrics.detectors.weights import WEIGHTS, resolve

    if detector == "none":  # a likelihood (bits/dim) uses the model itself, no detector
        return
    if detector not in DETECTOR_WEIGHTS:
        raise ZooError(f"unknown detector {detector!r}; valid: {', '.join(DETECTOR_WEIGHTS)}")
    name = DETECTOR_WEIGHTS[detector]
    if request.detector_weights:
        _check_weights_file(request.detector_weights, "--detector-weights", WEIGHTS[name])
    else:
        resolve(name)  # cached (checksummed) or downloaded now; offline: one line saying how to place the file
    if detector == "c3d_ucf101_npz":
        sibling = Path(request.detector_weights).parent / "mean2.npz" if request.detector_weights else None
        if request.detector_mean:
            _check_weights_file(request.detector_mean, "--detector-mean", WEIGHTS["c3d_mean"])
        elif sibling is None or not sibling.is_file():
            resolve("c3d_mean")


def validate_conditional(request: EvalRequest, run: dict) -> dict:
    """The inputs of a conditional checkpoint's scoring: its metrics, the held-out data and what the metrics read."""
    for flag, given in (("--stats-only", request.stats_only), ("--clip-list", request.clip_list),
                        ("--bootstrap", request.bootstrap), ("--num-real", request.num_real)):
        if given:
            raise ZooError(f"{flag} does not apply to a conditional model: it is scored on pairs of its translations "
                           "and their targets (--num-samples held-out clips)")
    from zoo.metrics.detectors.shapes_net import MIN_FRAMES

    presets = conditional_presets(request, run)
    for preset in presets:
        if problem := too_few_samples(preset):
            raise ZooError(problem.replace("--num-real", "--num-samples"))
        if preset.detector.startswith("shapes_net") and preset.frames < MIN_FRAMES:
            raise ZooError(f"--metric {preset.name.removesuffix('_heldout')}: shapes_net needs clips of at least "
                           f"{MIN_FRAMES} frames, and this {run.get('model_name')} translates {preset.frames}-frame "
                           "clips; score it with psnr / ssim / warp_error / mask_iou, or train it on longer clips")
    config = heldout_config(request, run)
    dataset = heldout_dataset(config, presets[0].num_fake)
    check_needs(presets, dataset.raw_item(0), config)
    for preset in presets:
        if preset.metric == "lpips":
            from zoo.metrics.lpips import load_lpips

            load_lpips(weights=request.lpips_weights)
        elif preset.detector not in ("none", "shapes_seg") and preset.detector not in request.extractors:
            check_detector(preset.detector, request)
    return run


def validate_prediction(request: EvalRequest) -> dict:
    """The inputs of `--task predict`: a checkpoint of a model that predicts, the protocol, the held-out data, the
    metrics' networks. A model without a prediction path is one line."""
    from zoo.evaluation.conditional import heldout_dataset
    from zoo.evaluation.prediction import prediction_config, prediction_presets, resolve_protocol
    from zoo.models.base import VideoGenerativeModel, checkpoint_meta, read_checkpoint
    from zoo.registry import MODELS, load_all

    if not request.ckpt or request.fake_dir:
        raise ZooError("--task predict continues held-out clips with a model: give --ckpt (not --fake-dir)")
    for flag, given in (("--stats-only", request.stats_only), ("--clip-list", request.clip_list),
                        ("--bootstrap", request.bootstrap), ("--num-real", request.num_real)):
        if given:
            raise ZooError(f"{flag} does not apply to --task predict: it scores --num-samples held-out sequences")
    run = checkpoint_meta(read_checkpoint(request.ckpt), source=request.ckpt)
    load_all()
    cls = MODELS.get(run["model_name"])
    if cls.predict is VideoGenerativeModel.predict:
        raise ZooError(f"--task predict: {run['model_name']} cannot continue a clip (it has no video-prediction "
                       "path); see docs/evaluation-prediction.md for the models that can")
    data_name = request.data or ((run.get("experiment") or {}).get("data") or {}).get("name", "")
    protocol = resolve_protocol(request, data_name)
    presets = prediction_presets(request, protocol)
    for preset in presets:
        if problem := too_few_samples(preset):
            raise ZooError(problem.replace("--num-real", "--num-samples"))
    heldout_dataset(prediction_config(request, run, protocol), protocol.sequences)
    for preset in presets:
        if preset.metric == "lpips":
            from zoo.metrics.lpips import load_lpips

            load_lpips(weights=request.lpips_weights)
        elif preset.detector != "none" and preset.detector not in request.extractors:
            check_detector(preset.detector, request)
    return run


def validate(request: EvalRequest) -> dict:
    """Check every input of `request` in the order a user fixes them -- numbers, metrics, the generated videos
    (checkpoint or folder), the real data and clip list, the detector weights -- and return the checkpoint record.
    Costs seconds (reads the checkpoint, indexes folders, hashes weights); raises one-line `ZooError`s."""
    from zoo.models.base import checkpoint_meta, read_checkpoint

    for flag, value, low in (("--batch-size", request.batch_size, 1), ("--devices", request.devices, 1),
                             ("--num-samples", request.num_samples, 1), ("--num-real", request.num_real, 1),
                             ("--bootstrap", request.bootstrap, 0), ("--threads", request.threads, 1),
                             ("--resolution", request.resolution, 1)):
        if value is not None and value < low:
            raise ZooError(f"{flag} must be at least {low}, got {value}")
    if request.device == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"--device cuda: no CUDA device is visible here (CUDA build: {torch.version.cuda or 'none'}); "
                       "use --device cpu")
    if request.device == "cuda" and request.devices > torch.cuda.device_count():
        raise ZooError(f"--devices {request.devices} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    if request.ckpt and request.fake_dir:
        raise ZooError("give either --ckpt or --fake-dir, not both")
    if request.task not in ("generate", "predict"):
        raise ZooError(f"--task {request.task}: valid: generate, predict")
    if request.task == "predict":
        return validate_prediction(request)
    for flag, given in (("--context", request.context), ("--horizon", request.horizon),
                        ("--samples", request.samples), ("--plot", request.plot)):
        if given is not None:
            raise ZooError(f"{flag} belongs to --task predict")
    from zoo.evaluation.prediction import PREDICTION_PRESETS

    if request.preset in PREDICTION_PRESETS:
        raise ZooError(f"--preset {request.preset} is a video-prediction protocol: add --task predict")
    if request.ckpt:
        run = checkpoint_meta(read_checkpoint(request.ckpt), source=request.ckpt)
        if is_conditional(run):
            return validate_conditional(request, run)
        refuse_conditional_keys(request, run)
    else:
        refuse_conditional_keys(request, {})
    presets = resolve_presets(request)
    for preset in presets:
        if problem := too_few_samples(preset):
            raise ZooError(problem)
    if not request.stats_only and request.ckpt is None and request.fake_dir is None:
        raise ZooError("give the generated videos: --ckpt PATH (samples a checkpoint) or --fake-dir DIR (videos)")
    run: dict = {}
    if request.ckpt:
        run = checkpoint_meta(read_checkpoint(request.ckpt), source=request.ckpt)
        presets = resolve_presets(request, run)
    if request.fake_dir and not Path(request.fake_dir).is_dir():
        raise ZooError(f"--fake-dir {request.fake_dir} is not a directory")
    if request.clip_list and not Path(request.clip_list).is_file():
        raise ZooError(f"--clip-list {request.clip_list} does not exist")
    groups: dict[tuple, Preset] = {}
    for p in presets:
        groups.setdefault(group_key(p), p)
    for p0 in groups.values():
        config = group_data_config(request, run, p0)
        if request.fake_dir and not request.stats_only:
            GeneratedFolder(request.fake_dir, config).check_count(p0)
        if p0.num_real:
            real_clips(config, request, p0.num_real)
        elif request.stats_only:
            raise ZooError(f"{p0.name} uses no real videos; there are no statistics to cache")
    for detector in sorted({p.detector for p in presets} - set(request.extractors)):
        check_detector(detector, request)
    return run
