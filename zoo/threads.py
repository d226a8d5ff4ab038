"""How many CPU threads `zoo fit` / `zoo eval` / `zoo sample` use: the cores this process may run on, shared between
the process doing the math and its DataLoader workers.

More threads than free cores is the worst case on a shared CPU: OpenMP threads spin waiting for each other and a
step gets 10-30x slower. So the default is the cores this process may really use -- the CPU affinity mask
(`taskset`, SLURM, containers) capped by the cgroup CPU quota (`/sys/fs/cgroup/cpu.max`, or cgroup v1's
`cpu.cfs_quota_us`) -- and the DataLoader workers (one thread each, PyTorch's default) are counted against it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from zoo.errors import ZooError


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, else v1 `cpu.cfs_quota_us / cpu.cfs_period_us`), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cores(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its affinity mask, capped by the cgroup quota (a fractional quota rounds up:
    1.5 CPUs run two threads at 75%)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return max(1, cores)


def compute_threads(threads: int | None, workers: int = 0, processes: int = 1) -> int:
    """Intra-op threads of each compute process: `threads` (default: `$OMP_NUM_THREADS` if set, else
    `usable_cores()`) shared by `processes` processes, less one core per DataLoader worker of each, at least 1."""
    if threads is not None and threads < 1:
        raise ZooError(f"--threads must be at least 1, got {threads}")
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        threads = int(os.environ["OMP_NUM_THREADS"])  # an explicit environment setting is the user's choice
    total = usable_cores() if threads is None else threads
    return max(1, total // max(1, processes) - max(0, workers))


def apply_threads(threads: int | None, workers: int = 0, processes: int = 1) -> int:
    """Set torch's intra-op threads for this process (see `compute_threads`); returns the number set."""
    n = compute_threads(threads, workers, processes)
    torch.set_num_threads(n)
    return n
