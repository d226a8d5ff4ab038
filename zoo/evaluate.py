"""One evaluation path: sample (or read videos) -> uint8 -> detector features -> metric -> leaderboard row.

`zoo eval` resolves each requested metric to a protocol preset, groups metrics that share detector features (FVD and
KVD on the same I3D pass), extracts real features once per protocol fingerprint (cached), samples a checkpoint's
videos once for all groups that score the same clips (IS and ACD read other detector outputs than FVD, not other
videos), extracts generated features in batches on every rank (DDP: gloo on CPU, NCCL on GPU; batch b always holds
the same samples whatever the number of ranks), syncs the metric states, prints a table and appends leaderboard rows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zoo import __version__
from zoo.config import DataConfig, heldout_data_config, parse_set, stable_hash, update_dataclass
from zoo.errors import ZooError
from zoo.metrics.detectors.weights import sha256_of
from zoo.metrics.feature_metric import VideoFeatureMetric, as_pixels
from zoo.metrics.presets import DEFAULT_PRESET, MODEL_LENGTH_PRESETS, PRESETS, Preset, for_checkpoint, too_few_samples
from zoo.paths import default_leaderboard

METRIC_KEYS = tuple(DEFAULT_PRESET)  # plain metric keys, each scored with its default preset


@dataclass
class EvalRequest:
    """Everything `zoo eval` was asked to do (picklable: it travels to DDP worker processes)."""

    metrics: list  # metric keys (fvd, kvd, is), preset names, or `Preset`s (Python API)
    ckpt: str | None = None  # checkpoint to sample from
    fake_dir: str | None = None  # or: a folder of generated videos
    real_dir: str | None = None  # shorthand for --data folder --data-root DIR
    data: str | None = None  # dataset key of the real clips (default: the checkpoint's)
    data_root: str | None = None
    data_sets: list[str] = field(default_factory=list)  # `--set data.KEY=VALUE` for the DataConfig videos are read with
    clip_list: str | None = None  # exported ClipList JSON pinning the real clips
    preset: str | None = None  # applies to every plain metric key
    num_samples: int | None = None  # override the preset's generated count
    num_real: int | None = None  # override the preset's real count
    resolution: int | None = None  # clip resolution for folders (default: the data config's)
    covariance: str | None = None  # override FVD covariance (unbiased | biased)
    batch_size: int = 16
    devices: int = 1
    device: str = "cpu"  # cpu | cuda
    bootstrap: int = 0  # K resamples for a 95% interval (0 = off)
    stats_only: bool = False  # only compute and cache real statistics
    detector_weights: str | None = None
    detector_mean: str | None = None  # the C3D's mean clip (`mean2.npz`) to use with custom C3D weights
    seed: int = 0
    leaderboard: str | None = field(default_factory=lambda: str(default_leaderboard()))  # None = do not append
    threads: int | None = None  # CPU threads per process (None: $OMP_NUM_THREADS, else the usable cores)
    samples_gif: bool = True  # write the first generated videos as a GIF beside the leaderboard (HTML embeds it)
    extractors: dict = field(default_factory=dict)  # detector key -> prebuilt extractor (tests, benchmarks; never CLI)


@dataclass
class EvalResult:
    metric: str
    preset: Preset
    values: dict[str, float]
    interval: tuple[float, float] | None
    num_real: int
    num_fake: int
    fingerprint: str
    detector: dict
    stats_cache: str  # hit | miss | none (REAL_FEATURES says it in words)


# -- resolution of what to compute ------------------------------------------------------------------------------


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


def _group_key(p: Preset) -> tuple:
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


# -- sources of videos --------------------------------------------------------------------------------------------


def code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def load_run(request: EvalRequest):
    """`(model or None, checkpoint record)` of the request."""
    if request.ckpt is None:
        return None, {}
    from zoo.models import load_model
    from zoo.models.base import checkpoint_meta, read_checkpoint

    meta = checkpoint_meta(read_checkpoint(request.ckpt), source=request.ckpt)
    model = load_model(request.ckpt, map_location=request.device if request.device != "cuda" else "cpu")
    return model, {**meta, "sha256": sha256_of(request.ckpt)}


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


# -- validation: every input, before any expensive work -----------------------------------------------------------


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
    presets = resolve_presets(request)
    for preset in presets:
        if problem := too_few_samples(preset):
            raise ZooError(problem)
    if request.ckpt and request.fake_dir:
        raise ZooError("give either --ckpt or --fake-dir, not both")
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
        groups.setdefault(_group_key(p), p)
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


def _batches(positions: list[int], size: int) -> list[list[int]]:
    return [positions[i : i + size] for i in range(0, len(positions), size)]


def _progress(total: int, desc: str, rank: int):
    return tqdm(total=total, desc=desc, unit="video", disable=rank != 0, dynamic_ncols=True)


def real_clips(config: DataConfig, request: EvalRequest, num: int):
    """`(dataset, clip list, fingerprint)` of the real side; the list holds at least `num` clips."""
    from zoo.datasets import build_dataset
    from zoo.datasets.cliplist import ClipList, make_clip_list

    dataset = build_dataset(config.name, config)
    try:
        clip_list = ClipList.load(request.clip_list) if request.clip_list else make_clip_list(dataset, num, config.seed)
    except ZooError as e:  # the data layer's hint names `zoo data cliplist --num`; here the flag is --num-real
        raise ZooError(str(e).replace("(--num)", "(--num-real)")) from None
    if len(clip_list.clips) < num:
        raise ZooError(f"the clip list has {len(clip_list.clips)} clips but the protocol needs {num}; "
                       f"pass --num-real {len(clip_list.clips)}")
    return dataset, clip_list, clip_list.fingerprint


def real_loader(dataset, clip_list, num: int, rank: int, world: int, batch_size: int, workers: int) -> DataLoader:
    """This rank's share of the first `num` clips of the list, decoded by `workers` DataLoader processes, in list
    order (the order features are gathered and cached in)."""
    from zoo.datasets.cliplist import ClipListDataset

    return DataLoader(ClipListDataset(dataset, clip_list, rank, world, num=num), batch_size=batch_size,
                      shuffle=False, num_workers=workers)


class _FirstClips(Dataset):
    """Clip 0 (starting at frame 0) of the videos `indices` of a dataset: generated videos are scored from their
    first frame (StyleGAN-V). Items: uint8 `[T, H, W, C]`."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> torch.Tensor:
        return self.dataset.pixels_at(self.indices[position], 0)


class GeneratedFolder:
    """`--fake-dir`: a folder of generated videos, read with the data layer's bad-file policy (`zoo.datasets.clips`).
    Files unreadable when indexed are left out (within `data.max_bad_fraction`, else the data layer's one-line
    error); a file that fails when decoded is replaced by another video's clip and counted, as real data is. The
    videos are scored on the good files, and `bad_files` says how many were dropped."""

    def __init__(self, root: str, config: DataConfig):
        from zoo.datasets import build_dataset

        folder = update_dataclass(config, {"name": "folder", "root": root, "folder_labels": False}, "data")
        self.root, self.dataset = root, build_dataset("folder", folder)
        self.good = [i for i in range(len(self.dataset)) if self.dataset.num_starts(i) > 0]
        self.failed: dict[str, str] = {}  # files that failed when decoded (all DataLoader workers)

    def check_count(self, preset: Preset) -> None:
        if len(self.good) < preset.num_fake:
            raise ZooError(f"--fake-dir {self.root} holds {len(self.good)} usable videos but {preset.name} needs "
                           f"{preset.num_fake}; generate more or pass --num-samples {len(self.good)}")

    def batches(self, positions: list[list[int]], workers: int) -> Iterator[torch.Tensor]:
        """The clips of the good files at `positions` (lists of places among the good files), batch by batch."""
        from zoo.datasets.clips import read_failure_log

        with tempfile.TemporaryDirectory() as tmp:
            self.dataset.failure_log = os.path.join(tmp, "failures.jsonl")  # written by every worker
            yield from DataLoader(_FirstClips(self.dataset, self.good), batch_sampler=positions,
                                  num_workers=workers)
            self.failed.update(read_failure_log(self.dataset.failure_log))

    def bad_files(self, world: int) -> list[str]:
        """Names of the files left out or replaced, over all ranks."""
        good = set(self.good)
        names = {self.dataset.item_name(i) for i in range(len(self.dataset)) if i not in good}
        names |= set(self.failed)
        if world > 1:
            gathered: list = [None] * world
            torch.distributed.all_gather_object(gathered, sorted(names))
            names = set().union(*gathered)
        return sorted(names)


def fake_videos(request: EvalRequest, model, preset: Preset, folder: GeneratedFolder | None, rank: int,
                world: int) -> Iterator[torch.Tensor]:
    """This rank's batches of the generated side, uint8 `[B, T, H, W, C]`: batch b of `preset.num_fake` videos
    goes to rank b % world."""
    every = _batches(list(range(preset.num_fake)), request.batch_size)
    mine = range(rank, len(every), world)
    batches = [every[b] for b in mine]
    if model is not None:
        span = preset.frames * preset.frame_stride
        frames = None if span == model.spec.frames else span
        device = next(model.parameters()).device
        for b, positions in zip(mine, batches):  # b: the batch's global number seeds its noise
            generator = torch.Generator(device=device).manual_seed(request.seed * 1_000_003 + b)
            with torch.no_grad():
                videos = model.sample(len(positions), generator=generator, frames=frames)
            yield as_pixels(videos[:, :, ::preset.frame_stride].float().cpu())
        return
    if folder is None:
        raise ZooError("give the generated videos: --ckpt PATH or --fake-dir DIR")
    folder.check_count(preset)
    yield from folder.batches(batches, folder.dataset.config.num_workers)


class SharedSamples:
    """A checkpoint's generated batches, sampled once for all the groups that score the same clips (frames, stride and
    count): sampling is seeded per batch, so drawing again would give the same videos at the same cost. Batches are
    kept only while a later group still needs them."""

    def __init__(self, presets: list[Preset], model):
        self.uses = Counter(self.key(p) for p in presets) if model is not None else Counter()
        self.kept: dict[tuple, list[torch.Tensor]] = {}

    @staticmethod
    def key(p: Preset) -> tuple:
        return p.frames, p.frame_stride, p.num_fake

    def batches(self, preset: Preset, draw: Callable[[], Iterator[torch.Tensor]]) -> Iterator[torch.Tensor]:
        key = self.key(preset)
        self.uses[key] -= 1
        if key in self.kept:
            yield from (self.kept[key] if self.uses[key] > 0 else self.kept.pop(key))
            return
        if self.uses[key] <= 0:  # the last (or only) group of these clips: nothing to keep
            yield from draw()
            return
        kept = self.kept[key] = []
        for pixels in draw():
            kept.append(pixels)
            yield pixels


# -- the distributed run ------------------------------------------------------------------------------------------


def _extractor(request: EvalRequest, preset: Preset, device: torch.device) -> nn.Module:
    if preset.detector in request.extractors:
        return request.extractors[preset.detector].to(device)
    from zoo.metrics.detectors import build_extractor

    return build_extractor(preset.detector, request.detector_weights, preset.resize, preset.aspect,
                           mean_path=request.detector_mean).to(device)


def _run_group(request: EvalRequest, presets: list[Preset], model, run: dict, rank: int, world: int,
               device: torch.device, samples: SharedSamples | None = None) -> list[EvalResult]:
    from zoo.metrics.stats import load_real_features, save_real_features, stats_key, stats_path

    p0 = presets[0]
    extractor = _extractor(request, p0, device)
    metrics = [build_metric(p, extractor).to(device) for p in presets]
    for metric in metrics:  # every rank holds a row list on both sides, so the uneven gather never stalls
        metric.update(features=torch.empty(0, extractor.dim), real=True)
        metric.update(features=torch.empty(0, extractor.dim), real=False)
    info = extractor.info.to_dict()
    if request.detector_weights:
        # the row names the file it used, not the preset's official weights (its SHA-256 is already the file's)
        info["weights"] = f"file:{Path(request.detector_weights).name}"
    config = group_data_config(request, run, p0)
    if rank == 0:
        print(protocol_line(presets), flush=True)
    fingerprint, cache = "", "none"
    if p0.num_real:
        dataset, clip_list, fingerprint = real_clips(config, request, p0.num_real)
        info["video_reader"] = dataset.video_reader  # decoders can disagree on pixels: part of the protocol and key
        key = stats_key(fingerprint, {**info, "frames": p0.frames, "frame_stride": p0.frame_stride}, p0.num_real)
        cached, unusable = load_real_features(key, p0.num_real, extractor.dim, fingerprint)
        if cached is not None:
            cache = "hit"
            for metric in metrics:
                metric.update(features=torch.from_numpy(cached[rank::world]), real=True)
        else:
            cache = "miss"
            loader = real_loader(dataset, clip_list, p0.num_real, rank, world, request.batch_size,
                                 config.num_workers)
            with _progress(p0.num_real, f"real {p0.name}", rank) as bar:
                for batch in loader:
                    feats = extractor(batch["pixels"].to(device))
                    for metric in metrics:
                        metric.update(features=feats, real=True)
                    bar.update(len(feats) * world)
            with metrics[0].sync_context(should_sync=world > 1):
                real, _ = metrics[0].feature_arrays()
            if rank == 0:
                save_real_features(key, real, {"preset": p0.protocol(), "fingerprint": fingerprint, "detector": info})
                if unusable:
                    print(f"replaced the cached real features {stats_path(key)}: {unusable}", flush=True)
        if request.stats_only:
            return [EvalResult("stats", p0, {}, None, p0.num_real, 0, fingerprint, info, cache)]
    elif request.stats_only:
        raise ZooError(f"{p0.name} uses no real videos; there are no statistics to cache")
    first = None
    folder = GeneratedFolder(request.fake_dir, config) if model is None and request.fake_dir else None
    with _progress(p0.num_fake, f"generated {p0.name}", rank) as bar:
        draw = functools.partial(fake_videos, request, model, p0, folder, rank, world)
        start = time.perf_counter()
        for pixels in samples.batches(p0, draw) if samples is not None else draw():
            feats = extractor(pixels.to(device))
            for metric in metrics:
                metric.update(features=feats, real=False)
            bar.update(len(pixels) * world)
            if first is None and rank == 0:
                first = pixels[:16]
                mine = math.ceil(math.ceil(p0.num_fake / request.batch_size) / world)  # this rank's batches
                if mine > 1:  # more to come: say how long they will take at the first batch's rate
                    bar.write(estimate_line(time.perf_counter() - start, len(pixels), p0.num_fake, mine))
    bad = folder.bad_files(world) if folder is not None else []
    if bad and rank == 0:
        print(f"--fake-dir {request.fake_dir}: {len(bad)} of {len(folder.dataset)} files could not be read, scored "
              f"on the good ones (first: {bad[0]})", flush=True)
    results = []
    for preset, metric in zip(presets, metrics):
        with metric.sync_context(should_sync=world > 1):  # every rank's feature rows, for every value
            values = explain_undefined(metric.results())
            interval = metric.bootstrap(request.bootstrap, seed=request.seed) if request.bootstrap else None
        if folder is not None:
            values["fake_bad_files"] = len(bad)  # recorded in the row: the generated set was not scored in full
        results.append(EvalResult(preset.metric, preset, values, interval, preset.num_real if preset.metric != "is"
                                  else 0, p0.num_fake, fingerprint, info, cache))
    if first is not None and model is not None:
        results[0].values["_samples"] = first  # type: ignore[assignment]
    return results


def _run_bpd(request: EvalRequest, preset: Preset, model, run: dict, rank: int, world: int,
             device: torch.device) -> EvalResult:
    """Bits/dim of real test-split clips under a model's `bits_per_dim(videos, labels) -> [B]` (its likelihood)."""
    if model is None:
        raise ZooError("--metric bpd scores a checkpoint's likelihood: pass --ckpt (a folder of videos has none)")
    if not callable(getattr(model, "bits_per_dim", None)):
        raise ZooError(f"{run.get('model_name')} defines no log-likelihood, so it has no bits/dim; --metric bpd "
                       "needs a likelihood model (pixelcnn, gated_pixelcnn, row_lstm, diagonal_bilstm)")
    from zoo.video_io import from_uint8

    preset = dataclasses.replace(preset, frames=model.spec.frames)
    config = group_data_config(request, run, preset)
    dataset, clip_list, fingerprint = real_clips(config, request, preset.num_real)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of per-clip bits/dim, clips)
    loader = real_loader(dataset, clip_list, preset.num_real, rank, world, request.batch_size, config.num_workers)
    with torch.no_grad(), _progress(preset.num_real, "real bpd", rank) as bar:
        for batch in loader:
            bpd = model.bits_per_dim(from_uint8(batch["pixels"]).to(device), batch["label"].to(device))
            total += torch.stack([bpd.double().sum(), total.new_tensor(float(len(bpd)))])
            bar.update(len(bpd) * world)
    if world > 1:
        torch.distributed.all_reduce(total)
    info = {"detector": "none", "weights": "", "sha256": "", "verified": True}  # no detector: nothing to verify
    return EvalResult("bpd", preset, {"bpd": float(total[0] / total[1])}, None, int(total[1]), 0, fingerprint, info,
                      "none")


def _run(rank: int, world: int, request: EvalRequest, port: int, out: str | None) -> list[EvalResult]:
    device = torch.device(f"cuda:{rank}" if request.device == "cuda" else request.device)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                             world_size=world)
    try:
        model, run = load_run(request)
        if model is not None:
            model = model.to(device).eval()
        presets = resolve_presets(request, run)
        groups: dict[tuple, list[Preset]] = {}
        for p in presets:
            groups.setdefault(_group_key(p), []).append(p)
        from zoo.threads import apply_threads

        # the detector (and the sampling model) get the cores the video-decoding workers leave; each worker keeps
        # one (PyTorch runs DataLoader workers single-threaded)
        workers = max(group_data_config(request, run, g[0]).num_workers for g in groups.values())
        apply_threads(request.threads, workers, world if device.type == "cpu" else 1)
        results = []
        samples = SharedSamples([g[0] for g in groups.values() if g[0].metric != "bpd"], model)
        for group in groups.values():
            if group[0].metric == "bpd":  # a likelihood, not detector features: its own short path
                results += [_run_bpd(request, p, model, run, rank, world, device) for p in group]
                continue
            results += _run_group(request, group, model, run, rank, world, device, samples)
        if rank == 0:
            report(results, request, run)
            if out is not None:  # plain values only, so the parent reads them back with weights_only=True
                torch.save([dataclasses.asdict(dataclasses.replace(r, values={
                    k: float(v) if isinstance(v, (int, float)) else v  # undefined: None and its reason
                    for k, v in r.values.items() if k != "_samples"})) for r in results], out)
        return results
    except ZooError as e:
        if out is not None:  # a spawned rank: its parent turns the file into the same one-line error
            Path(error_file(out, rank)).write_text(str(e))
        raise
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def error_file(out: str, rank: int) -> str:
    """Where spawned rank `rank` leaves the message of the `ZooError` it stopped on."""
    return f"{out}.rank{rank}.error"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def evaluate(request: EvalRequest) -> list[EvalResult]:
    """Run the evaluation on `request.devices` processes; returns rank 0's results (rows already appended).

    Every input (metrics, checkpoint or generated folder, real data and clip list, detector weights) is checked
    first, in that order, so a mistake is reported in seconds, not after the real features are extracted."""
    validate(request)
    if request.devices <= 1:
        return _run(0, 1, request, 0, None)
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "results.pt")
        try:
            mp.spawn(_run, args=(request.devices, request, _free_port(), out), nprocs=request.devices, join=True)
        except (mp.ProcessRaisedException, mp.ProcessExitedException):
            # a rank that stopped on a ZooError (rows set aside, bad data found mid-run) says why in one line, as
            # one process would; the other ranks' errors are the collective it left (a closed connection)
            said = [Path(error_file(out, r)) for r in range(request.devices)]
            message = next((p.read_text() for p in said if p.is_file()), None)
            if message is None:
                raise
            raise ZooError(message) from None
        records = torch.load(out, weights_only=True)
        return [EvalResult(**{**r, "preset": Preset(**r["preset"]),
                              "interval": tuple(r["interval"]) if r["interval"] is not None else None})
                for r in records]


# -- output -------------------------------------------------------------------------------------------------------


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


# -- `zoo eval` ---------------------------------------------------------------------------------------------------


def metric_table() -> str:
    """Every key `--metric` takes, from the metric registry: plain metrics with their default preset, then every
    preset with its metric and protocol."""
    from zoo.registry import METRICS, load_all

    load_all()
    lines = ["metrics (--metric KEY scores with the default preset; --preset NAME picks another):"]
    lines += [f"  {e.key:<26} default {DEFAULT_PRESET[e.key]}: {e.description}" for e in METRICS
              if e.key in METRIC_KEYS and not isinstance(e.obj, Preset)]
    lines.append("presets (--metric NAME):")
    lines += [f"  {e.key:<26} {e.description}" for e in METRICS if isinstance(e.obj, Preset)]
    lines.append(f"{', '.join(MODEL_LENGTH_PRESETS)} score a checkpoint at its own clip length, as `zoo bench` does "
                 "(a --fake-dir at the preset's 16 frames); the others are fixed published protocols.")
    return "\n".join(lines)


def add_eval_parser(sub) -> None:
    import argparse

    p = sub.add_parser("eval", help="score a checkpoint or a folder of videos (FVD, KVD, IS, PRDC, ACD, bits/dim), "
                                    "log to the leaderboard",
                       description="Score generated videos against real ones.", epilog=metric_table(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metric", action="append", required=True,
                   help=f"{', '.join(METRIC_KEYS)} or a preset name (listed below); repeatable")
    p.add_argument("--ckpt", help="checkpoint written by `zoo fit` (samples with its EMA weights where kept)")
    p.add_argument("--fake-dir", help="folder of generated videos instead of --ckpt")
    p.add_argument("--real-dir", help="folder of real videos (same as --data folder --data-root DIR)")
    p.add_argument("--data", help="dataset key of the real clips (default: the checkpoint's)")
    p.add_argument("--data-root", help="dataset directory")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                   help="another DataConfig field the videos are read with (data.max_bad_fraction, data.decoder, ...)")
    p.add_argument("--clip-list", help="ClipList JSON from `zoo data cliplist` pinning the real clips")
    p.add_argument("--preset", choices=sorted(PRESETS), help="protocol for plain metric keys")
    p.add_argument("--num-samples", type=int, help="generated videos (default: the preset's)")
    p.add_argument("--num-real", type=int, help="real clips (default: the preset's)")
    p.add_argument("--resolution", type=int, help="clip resolution of folders / real data (default: the config's)")
    p.add_argument("--covariance", choices=["unbiased", "biased"], help="FVD covariance: N-1 (TF) or N (StyleGAN-V)")
    p.add_argument("--batch-size", type=int, default=16, help="videos per batch per device")
    p.add_argument("--devices", type=int, default=1, help="processes (DDP; gloo on CPU, NCCL on GPU)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--bootstrap", type=int, default=0, metavar="K", help="report a 95%% interval from K resamples")
    p.add_argument("--stats-only", action="store_true", help="only compute and cache the real statistics")
    p.add_argument("--detector-weights", help="use this detector weights file (its SHA-256 is recorded)")
    p.add_argument("--detector-mean", metavar="FILE",
                   help="the C3D's mean clip (mean2.npz) for IS with custom C3D weights (default: beside them, "
                        "else the cached official file)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--leaderboard", default=None,
                   help="CSV to append rows to (default: runs/leaderboard.csv, or $ZOO_HOME/runs/leaderboard.csv)")
    p.add_argument("--no-leaderboard", action="store_true", help="print only")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU cores for the detector and its video-decoding workers (default: $OMP_NUM_THREADS, else "
                        "the cores this process may use, cgroup quota included); each worker keeps one")
    p.set_defaults(run=_run_eval)


def _run_eval(args) -> None:
    request = EvalRequest(
        metrics=args.metric, ckpt=args.ckpt, fake_dir=args.fake_dir, real_dir=args.real_dir, data=args.data,
        data_root=args.data_root, data_sets=args.set, clip_list=args.clip_list, preset=args.preset,
        num_samples=args.num_samples,
        num_real=args.num_real, resolution=args.resolution, covariance=args.covariance, batch_size=args.batch_size,
        devices=args.devices, device=args.device, bootstrap=args.bootstrap, stats_only=args.stats_only,
        detector_weights=args.detector_weights, detector_mean=args.detector_mean, seed=args.seed,
        leaderboard=None if args.no_leaderboard or args.stats_only else args.leaderboard or str(default_leaderboard()),
        threads=args.threads,
    )
    evaluate(request)
