"""TGANv2's claim, measured: memory and time of a training step with the subsampling layers on versus off.

One training step = one D update (real levels, fakes, R1 summed over the batch) + one G update, with Adam, exactly
the losses the model trains with. Three settings of one network, interleaved step by step in one process:

* off: every level renders every frame of every video (subsample_frame = subsample_batch = false);
* frames: every 2nd frame per level (the default, the README's UCF-101 command);
* frames + batch: also every 2nd video per level (conf/dirac.yml).

Memory: on CUDA the peak allocated during the step; on CPU (where a process's peak RSS cannot be reset between
settings) the bytes of the tensors autograd saves for backward in the G and D updates (the activation memory the
paper's claim is about; parameters and optimizer state are equal in all settings). Time: median over steps of
wall time on CUDA, of this process's CPU time on CPU (run with 1 thread: robust to other load on a shared machine).

    python benchmarks/models_tgan2.py [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from zoo.models.base import VideoSpec
from zoo.models.tgan2 import TGANv2, TGANv2Config

SETTINGS = {"off": (False, False), "frames": (True, False), "frames + batch": (True, True)}


class SavedBytes:
    """Counts the distinct storages autograd saves for backward while active (CPU activation memory)."""

    def __init__(self):
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def __enter__(self):
        self.storages.clear()
        self.context = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.context.__enter__()
        return self

    def __exit__(self, *exc):
        self.context.__exit__(*exc)

    @property
    def mib(self) -> float:
        return sum(self.storages.values()) / 2**20


def train_step(model: TGANv2, optimizers, batch, saved: SavedBytes | None) -> float:
    """One D and one G update; returns the saved-activation MiB (max of the two updates) when `saved` is given."""
    g_opt, d_opt = optimizers
    peak = 0.0
    updates = ((model.discriminator, model.generator, d_opt, lambda: model.discriminator_loss(batch, 0)[0]),
               (model.generator, model.discriminator, g_opt, lambda: model.generator_loss(batch)[0]))
    for net, other, opt, loss_fn in updates:
        net.requires_grad_(True)
        other.requires_grad_(False)
        if saved is not None:
            with saved:
                loss = loss_fn()
            peak = max(peak, saved.mib)
        else:
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return peak


def rows(steps: int = 3) -> list[tuple]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # the paper's UCF-101 networks at the official per-GPU batch of conf/dirac.yml
        spec, batch_size, base = VideoSpec(3, 16, 192, 0), 8, {}
    else:  # all 4 levels and the official block layout, narrowed to run on a CPU in seconds
        spec, batch_size, base = VideoSpec(3, 16, 64, 0), 8, dict(clstm_channels=64, ch=8, dis_channels=8)
    config_name = f"tgan2 b{batch_size} {spec.frames}x{spec.resolution}^2 {'paper widths' if not base else 'ch 8'} "
    clock = time.perf_counter if device == "cuda" else time.process_time
    models, optimizers = {}, {}
    for name, (frames, batch) in SETTINGS.items():
        torch.manual_seed(0)
        model = TGANv2(TGANv2Config(**base, subsample_frame=frames, subsample_batch=batch), spec).to(device).train()
        models[name], optimizers[name] = model, model.configure_optimizers()
    video = torch.rand(batch_size, 3, spec.frames, spec.resolution, spec.resolution, device=device) * 2 - 1
    batch = {"video": video, "label": torch.zeros(batch_size, dtype=torch.long, device=device)}
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    memory: dict[str, float] = {}
    for step in range(steps + 1):  # step 0 warms up every setting
        for name in SETTINGS:  # interleaved: machine load hits all settings alike
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            start = clock()
            saved = SavedBytes() if device == "cpu" and step == 0 else None
            mib = train_step(models[name], optimizers[name], batch, saved)
            if device == "cuda":
                torch.cuda.synchronize()
                mib = (torch.cuda.max_memory_allocated() - before) / 2**20
            if step == 0:
                memory[name] = mib
            else:
                times[name].append(1000 * (clock() - start))
    what = "peak step memory above the weights" if device == "cuda" else "activations saved for backward"
    out = []
    for name in SETTINGS:
        out.append((f"tgan2 {what} (subsampling {name})", config_name + device, round(memory[name], 1), "MiB"))
        out.append((f"tgan2 train step{' (CPU time)' if device == 'cpu' else ''} (subsampling {name})",
                    config_name + device,
                    round(statistics.median(times[name]), 1), "ms"))
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (after one warm-up)")
    args = parser.parse_args()
    print("what,config,value,unit")
    for row in rows(args.steps):
        print(",".join(str(v) for v in row))
