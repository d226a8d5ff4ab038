"""Two gloo ranks on CPU, each updating with its half of the clips: `compute()` syncs the sum states, so every rank
reports the value of one process that saw all clips (PSNR, SSIM, warping error)."""

import json
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _data() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    out = torch.randint(0, 256, (4, 3, 16, 16, 3), dtype=torch.uint8, generator=g)
    real = (out.int() + torch.randint(-20, 21, out.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    flow = torch.randn(4, 2, 2, 16, 16, generator=g)
    valid = torch.rand(4, 2, 16, 16, generator=g) > 0.3
    return out, real, flow, valid


def _values(part: slice) -> dict[str, float]:
    from zoo.metrics.conditional import VideoPSNR, VideoSSIM, WarpError

    out, real, flow, valid = (x[part] for x in _data())
    metrics = {"psnr": VideoPSNR(), "ssim": VideoSSIM(), "warp_error": WarpError()}
    metrics["psnr"].update(out, real)
    metrics["ssim"].update(out, real)
    metrics["warp_error"].update(out, flow, valid)
    return {k: float(m.compute()) for k, m in metrics.items()}


def _rank(rank: int, port: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        values = _values(slice(rank * 2, rank * 2 + 2))  # unequal-looking halves: clips 0-1 and 2-3
    finally:
        dist.destroy_process_group()
    with open(f"{folder}/rank{rank}.json", "w") as f:
        json.dump(values, f)


def test_two_gloo_ranks_give_the_single_process_value(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children inherit the imported modules (spawn re-imports torchmetrics, ~10 s per rank on 2 cores)
    mp.start_processes(_rank, args=(port, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    single = _values(slice(0, 4))
    for rank in (0, 1):
        synced = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert synced.keys() == single.keys()
        for key, value in single.items():
            assert abs(synced[key] - value) < 1e-9 * max(1.0, abs(value)), (rank, key, synced[key], value)
    assert single != _values(slice(0, 2))  # the halves differ, so the sync is what makes them agree
