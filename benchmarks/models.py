"""Speed of every registered model at its tiny config: training step time, sampling rate, parameters, memory.

Prints CSV rows `what,config,value,unit`, then the rows of every model-specific benchmark module
`benchmarks/models_<name>.py` (exposing `rows() -> list[tuple]`), e.g. comparisons against other implementations.

    python benchmarks/models.py [--models mocogan video_diffusion] [--steps 10] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zoo.config import resolve_config  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.models.base import ConditionalVideoModel  # noqa: E402
from zoo.registry import MODELS, load_all  # noqa: E402
from zoo.training import fit  # noqa: E402

NEEDS_STAGE_ONE = {"videogpt"}  # benchmarked in benchmarks/models_videogpt.py, which trains its VQ-VAE first


class StepTimer(Callback):
    """Wall time of each training step after `warmup` steps (data loading included, as a user sees it)."""

    def __init__(self, warmup: int = 2):
        self.warmup, self.times, self._start = warmup, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if pl_module.iteration > self.warmup:
            self.times.append(time.perf_counter() - self._start)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux: process peak RSS


def model_rows(key: str, steps: int, device: str) -> list[tuple]:
    tiny = REPO / "experiments" / key / "tiny.yaml"
    with tempfile.TemporaryDirectory() as run_dir:
        sets = [f"train.run_dir={run_dir}", f"train.max_steps={steps + 2}", "train.sample_every=0",
                "train.checkpoint_every=100000", f"train.accelerator={'gpu' if device.startswith('cuda') else 'cpu'}"]
        config = resolve_config(key, "shapes", MODELS.get(key).config_class, [tiny], sets)
        timer = StepTimer()
        with contextlib.redirect_stdout(sys.stderr):  # Lightning's bar writes to stdout; stdout is the CSV
            model = fit(config, extra_callbacks=[timer]).model.to(device)
    name = f"{key}/tiny b{config.train.batch_size} {config.data.frames}x{config.data.resolution}^2"
    step_ms = 1000 * sum(timer.times) / len(timer.times)
    n = config.train.batch_size
    generate = model.sample
    if isinstance(model, ConditionalVideoModel):  # refuses sample(): time translating n condition videos instead
        spec = model.spec
        condition = torch.zeros(n, spec.condition_channels, spec.frames, spec.resolution, spec.resolution,
                                device=device)
        condition[:, 0] = 1

        def generate(n, generator):
            return model.translate(condition, generator=generator)

    try:
        generate(n, generator=torch.Generator(device).manual_seed(0))  # warm-up
    except ZooError:  # a prediction-only model (dvg) refuses sample(): time n continuations of a context instead
        if not model.can_predict:
            raise
        spec = model.spec
        context = torch.zeros(n, spec.channels, 2, spec.resolution, spec.resolution, device=device)

        def generate(n, generator):
            return model.predict(context, spec.frames - 2, generator=generator)

        generate(n, generator=torch.Generator(device).manual_seed(0))
    start = time.perf_counter()
    generate(n, generator=torch.Generator(device).manual_seed(1))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    samples_per_s = n / (time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return [
        (f"{key} train step", name, round(step_ms, 1), "ms"),
        (f"{key} sampling", name, round(samples_per_s, 2), "videos/s"),
        (f"{key} parameters", name, params, "count"),
        (f"{key} peak memory", name + f" {device}", round(peak_memory_mb(device), 1), "MiB"),
    ]


def main() -> None:
    load_all()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[k for k in MODELS.keys() if k not in NEEDS_STAGE_ONE])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model (after 2 warm-up steps)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-extras", action="store_true", help="skip benchmarks/models_<key>.py")
    args = parser.parse_args()
    print("what,config,value,unit", flush=True)
    sections = [lambda key=key: model_rows(key, args.steps, args.device) for key in args.models]
    if not args.no_extras:
        extras = sorted(path.stem for path in (REPO / "benchmarks").glob("models_*.py"))
        sections += [importlib.import_module(f"benchmarks.{name}").rows for name in extras]
    for section in sections:
        for row in section():
            print(",".join(str(v) for v in row), flush=True)


if __name__ == "__main__":
    main()
