"""The distributed run: one process per device (gloo on CPU, NCCL on GPU), each scoring its share."""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.evaluation.conditional import heldout_config, is_conditional, score_conditional
from zoo.evaluation.likelihood import score_bpd
from zoo.evaluation.protocol import group_data_config, group_key, resolve_presets
from zoo.evaluation.report import report
from zoo.evaluation.request import EvalRequest, EvalResult
from zoo.evaluation.sources import SharedSamples
from zoo.evaluation.unconditional import score_group
from zoo.evaluation.validate import load_run, validate
from zoo.metrics.presets import Preset


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
        if request.task == "predict":  # continuations of held-out contexts vs the real futures
            from zoo.evaluation.prediction import score_prediction
            from zoo.threads import apply_threads

            apply_threads(request.threads, 0, world if device.type == "cpu" else 1)
            results = score_prediction(request, model, run, rank, world, device)
            if rank == 0:
                report(results, request, run)
                if request.plot:
                    from zoo.evaluation.prediction_plot import plot_request

                    print(plot_request(results, request, run))
                _save_results(results, out)
            return results
        if model is not None and is_conditional(run):  # translations of held-out conditions vs their targets
            from zoo.threads import apply_threads

            apply_threads(request.threads, heldout_config(request, run).num_workers, world if device.type == "cpu"
                          else 1)
            results = score_conditional(request, model, run, rank, world, device)
            if rank == 0:
                report(results, request, run)
                _save_results(results, out)
            return results
        presets = resolve_presets(request, run)
        groups: dict[tuple, list[Preset]] = {}
        for p in presets:
            groups.setdefault(group_key(p), []).append(p)
        from zoo.threads import apply_threads

        # the detector (and the sampling model) get the cores the video-decoding workers leave; each worker keeps
        # one (PyTorch runs DataLoader workers single-threaded)
        workers = max(group_data_config(request, run, g[0]).num_workers for g in groups.values())
        apply_threads(request.threads, workers, world if device.type == "cpu" else 1)
        results = []
        samples = SharedSamples([g[0] for g in groups.values() if g[0].metric != "bpd"], model)
        for group in groups.values():
            if group[0].metric == "bpd":  # a likelihood, not detector features: its own short path
                results += [score_bpd(request, p, model, run, rank, world, device) for p in group]
                continue
            results += score_group(request, group, model, run, rank, world, device, samples)
        if rank == 0:
            report(results, request, run)
            _save_results(results, out)
        return results
    except ZooError as e:
        if out is not None:  # a spawned rank: its parent turns the file into the same one-line error
            Path(error_file(out, rank)).write_text(str(e))
        raise
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def _save_results(results: list[EvalResult], out: str | None) -> None:
    """A spawned rank 0's results for its parent: plain values only, so they read back with weights_only=True."""
    if out is not None:
        torch.save([dataclasses.asdict(dataclasses.replace(r, values={
            k: float(v) if isinstance(v, (int, float)) else v  # undefined: None and its reason
            for k, v in r.values.items() if k != "_samples"})) for r in results], out)


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
