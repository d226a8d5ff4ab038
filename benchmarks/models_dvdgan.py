"""DVD-GAN rows (run by benchmarks/models.py): separable vs joint self-attention at growing T x H x W, and the
`shapes` config's training step in CPU seconds (what docs/models/dvdgan.md's "learns in ~N minutes on a CPU" rests on).

Attention: forward + backward of one `SeparableAttention` (H, then W, then T) against one `JointSelfAttention` over
all T*H*W positions, both on the same `(1, 32, T, H, W)` input, float32, one thread. Memory is the peak resident set
size (`resource.getrusage(...).ru_maxrss`) of a fresh child process minus its resident size just before the call, so
every measurement starts from a clean allocator; time is the median of 3 calls after a warm-up. Both variants run
at each size in the same invocation, interleaved.

    python benchmarks/models_dvdgan.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZES = [(4, 4, 4), (4, 8, 8), (8, 8, 8), (8, 16, 16), (16, 16, 16), (8, 32, 32)]  # (T, H, W)
CHANNELS = 32

_CHILD = r"""
import json, resource, statistics, sys, time
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from zoo.models.layers.separable_attention import JointSelfAttention, SeparableAttention
kind, t, h, w, c = sys.argv[2], *map(int, sys.argv[3:7])
torch.manual_seed(0)
layer = SeparableAttention(c) if kind == "separable" else JointSelfAttention(c)
for p in layer.parameters():
    if p.dim() == 0:
        p.data.fill_(1.0)  # open the residual gains so the attention path is really computed
x = torch.randn(1, c, t, h, w, requires_grad=True)
def rss_kib():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() // 1024
before = rss_kib()
times = []
for i in range(4):
    start = time.perf_counter()
    layer(x).square().mean().backward()
    times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"ms": 1000 * statistics.median(times[1:]), "mib": max(peak - before, 0) / 1024}))
"""


def attention_run(kind: str, size: tuple[int, int, int]) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(REPO), kind, *map(str, size), str(CHANNELS)],
                          capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1", "PATH": ""})
    return json.loads(done.stdout.strip().splitlines()[-1])


def attention_rows() -> list[tuple]:
    rows = []
    for size in SIZES:
        config = f"fwd+bwd b1 C{CHANNELS} TxHxW={size[0]}x{size[1]}x{size[2]} cpu 1 thread"
        for kind in ("joint", "separable"):
            result = attention_run(kind, size)
            label = "joint self-attention (baseline)" if kind == "joint" else "separable attention H,W,T (used)"
            rows.append((f"dvdgan {label} time", config, round(result["ms"], 2), "ms"))
            rows.append((f"dvdgan {label} peak RSS increase", config, round(result["mib"], 1), "MiB"))
    return rows


def shapes_step_rows(steps: int = 5) -> list[tuple]:
    """One training step of experiments/dvdgan/shapes.yaml (2 D updates + 1 G update), CPU seconds of this process."""
    import torch

    sys.path.insert(0, str(REPO))
    from zoo.config import resolve_config
    from zoo.models.base import VideoSpec
    from zoo.models.dvdgan import DVDGAN, DVDGANConfig

    torch.set_num_threads(1)
    config = resolve_config("dvdgan", "shapes", DVDGANConfig)
    data, b = config.data, config.train.batch_size
    torch.manual_seed(0)
    model = DVDGAN(config.model, VideoSpec(3, data.frames, data.resolution, 9))
    g_opt, d_opt = model.configure_optimizers()
    batch = {"video": torch.rand(b, 3, data.frames, data.resolution, data.resolution) * 2 - 1,
             "label": torch.randint(9, (b,))}
    times = []
    for _ in range(steps + 1):
        start = time.process_time()
        for optimizer, loss_fn in [(d_opt, lambda: model.discriminator_loss(batch, 0))] * 2 + [
            (g_opt, lambda: model.generator_loss(batch))
        ]:
            optimizer.zero_grad(set_to_none=True)
            loss_fn()[0].backward()
            optimizer.step()
        times.append(time.process_time() - start)
    median = sorted(times[1:])[len(times[1:]) // 2]
    name = f"dvdgan/shapes b{b} {data.frames}x{data.resolution}^2 g_ch{config.model.g_ch} d_ch{config.model.d_ch}"
    return [
        ("dvdgan shapes train step (CPU time, 1 thread)", name, round(median, 3), "s"),
        ("dvdgan shapes max_steps x step (CPU time, 1 thread)", name,
         round(median * config.train.max_steps / 60, 1), "min"),
    ]


def rows() -> list[tuple]:
    return attention_rows() + shapes_step_rows()


if __name__ == "__main__":
    print("what,config,value,unit")
    for row in rows():
        print(",".join(str(v) for v in row), flush=True)
