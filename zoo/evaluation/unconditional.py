"""Unconditional models and folders of videos: detector features of generated and real clips -> metric values."""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.evaluation.protocol import build_metric, explain_undefined, group_data_config
from zoo.evaluation.report import estimate_line, protocol_line
from zoo.evaluation.request import EvalRequest, EvalResult
from zoo.evaluation.sources import GeneratedFolder, SharedSamples, fake_videos, progress, real_clips, real_loader
from zoo.metrics.presets import Preset


def build_detector(request: EvalRequest, preset: Preset, device: torch.device) -> nn.Module:
    if preset.detector in request.extractors:
        return request.extractors[preset.detector].to(device)
    from zoo.metrics.detectors import build_extractor

    return build_extractor(preset.detector, request.detector_weights, preset.resize, preset.aspect,
                           mean_path=request.detector_mean).to(device)


def score_group(request: EvalRequest, presets: list[Preset], model, run: dict, rank: int, world: int,
               device: torch.device, samples: SharedSamples | None = None) -> list[EvalResult]:
    from zoo.metrics.stats import load_real_features, save_real_features, stats_key, stats_path

    p0 = presets[0]
    extractor = build_detector(request, p0, device)
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
            with progress(p0.num_real, f"real {p0.name}", rank) as bar:
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
    with progress(p0.num_fake, f"generated {p0.name}", rank) as bar:
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
