"""The distance of every model's slow learning check: `fvd_shapes` (the shapes benchmark's FVD with the shipped
`shapes_net` detector), so the zoo's checks use the yardstick its users get from `zoo eval --metric fvd_shapes`.

The detector is trained with corruption augmentation (noise, coloured speckle, blur, blockiness:
docs/shapes-benchmark.md), so early samples full of high-frequency artefacts score as far from real as they
look, instead of farther than an untrained network's near-grey clips.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from zoo.metrics.feature_metric import as_pixels
from zoo.metrics.frechet import frechet_distance


@lru_cache(maxsize=1)
def _shapes_extractor():
    from zoo.metrics.detectors import build_extractor

    return build_extractor("shapes_net")


def fvd_shapes_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """fvd_shapes between two sets of float videos `[N, C, T, H, W]` in [-1, 1] (T >= 8), quantized to uint8 first as
    `zoo eval` does; the float64 Frechet distance of `zoo.metrics.frechet` on the 128 shapes_net features."""
    extractor = _shapes_extractor()

    def feats(videos):
        return torch.cat([extractor(as_pixels(videos[i : i + 64])) for i in range(0, len(videos), 64)]).numpy()

    return frechet_distance(feats(real), feats(fake))


def trained_vs_untrained(key: str, config_class, tmp_path, num: int = 128) -> tuple[float, float]:
    """Train `key` with experiments/<key>/shapes.yaml (no samples or step checkpoints written), and return the
    fvd_shapes of the untrained and of the trained network's samples (same noise) to `num` real training clips."""
    from zoo.config import resolve_config
    from zoo.datasets.datamodule import VideoDataModule
    from zoo.training import build_model, fit

    sets = [f"train.run_dir={tmp_path}", "train.sample_every=0", "train.checkpoint_every=100000"]
    config = resolve_config(key, "shapes", config_class, sets=sets)
    datamodule = VideoDataModule(config.data, config.train.batch_size, config.train.seed)
    torch.manual_seed(config.train.seed)
    initial = build_model(config, datamodule)
    trained = fit(config).model.cpu()
    real = torch.stack([datamodule.dataset[i]["video"] for i in range(num)])
    d_initial, d_trained = (fvd_shapes_distance(real, model.sample(num, generator=torch.Generator().manual_seed(0)))
                            for model in (initial, trained))
    print(f"{key}: fvd_shapes of samples, untrained {d_initial:.1f}, trained {d_trained:.1f}")  # shown with -s
    return d_initial, d_trained
