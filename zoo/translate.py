"""`zoo sample` for conditional models: translate held-out conditions (or the user's own videos) and show condition |
output | real target side by side.

A conditional checkpoint records the data config it trained on; its held-out clips are the ones `zoo eval` scores
(`evaluation.conditional.heldout_config`: test split, data seed + 1). `--condition-from VIDEO_OR_DIR` computes the
condition the model was trained on from the user's videos, where that condition is a function of a video: `edges`
(Canny maps of its frames, the same thresholds) or `source` (the video itself). Segmentation and keypoint models
translate label maps and keypoints, which no video holds: they take a paired folder (`--data-root`) instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from zoo.config import DataConfig, heldout_data_config, update_dataclass
from zoo.errors import ZooError
from zoo.video_io import from_uint8

FROM_VIDEOS = ("edges", "source")  # conditions computed from a video alone
# segmentation classes -> colours (background black, then distinct hues), values in [0, 1]
PALETTE = torch.tensor([[0, 0, 0], [0.9, 0.3, 0.3], [0.3, 0.9, 0.3], [0.3, 0.4, 0.95], [0.95, 0.85, 0.3],
                        [0.85, 0.35, 0.9], [0.3, 0.9, 0.9], [1, 1, 1]])


def trained_data_config(model) -> DataConfig:
    """The data config the checkpoint's model trained on (from its recorded experiment)."""
    data = dict((model.experiment or {}).get("data") or {})
    return update_dataclass(DataConfig(), data, "data")


def condition_preview(condition: torch.Tensor, kind: str) -> torch.Tensor:
    """A condition `[B, C_c, T, H, W]` as RGB videos `[B, 3, T, H, W]` in [-1, 1] for the grid.

    Segmentation: each class in its palette colour (argmax of the one-hot); edges and keypoint heatmaps: white on
    black (the maximum over channels); a source video: itself.
    """
    if kind == "source":
        return condition.clamp(-1, 1)
    if kind == "segmentation":
        classes = condition.argmax(1)  # [B, T, H, W]
        colours = PALETTE[classes % len(PALETTE)]  # [B, T, H, W, 3]
        return colours.permute(0, 4, 1, 2, 3) * 2 - 1
    grey = condition.amax(1, keepdim=True).clamp(0, 1) * 2 - 1  # edges in {0, 1}, heatmaps in (0, 1]
    return grey.expand(-1, 3, -1, -1, -1)


def heldout_items(model, num: int, data_root: str | None = None) -> dict[str, torch.Tensor]:
    """The first `num` held-out items of the checkpoint's data, collated: `condition`, `video` (the targets)."""
    from zoo.datasets import build_dataset

    config = trained_data_config(model)
    if data_root:
        config = update_dataclass(config, {"root": data_root}, "data")
    config = heldout_data_config(update_dataclass(config, {"frames": model.spec.frames, "frame_stride": 1}, "data"))
    dataset = build_dataset(config.name, config)
    if len(dataset) < num:
        raise ZooError(f"the held-out data ({config.name}, split {config.split}) holds {len(dataset)} clips; pass "
                       f"--num {len(dataset)} or fewer")
    items = [dataset[i] for i in range(num)]
    return {key: torch.stack([item[key] for item in items]) for key in ("condition", "video")}


def conditions_from(path: str, model, num: int) -> torch.Tensor:
    """The conditions `[N, C_c, T, H, W]` of up to `num` of the user's videos (a file, or a folder of them), computed
    the way the model's training data computed them."""
    from zoo.datasets import build_dataset

    kind = model.spec.condition
    if kind not in FROM_VIDEOS:
        raise ZooError(f"--condition-from reads videos, but this {model.registry_key} translates {kind} maps, which "
                       f"a video does not hold; put them in a paired folder (DIR/source, DIR/target) and pass "
                       f"--data-root DIR (videos give {' or '.join(FROM_VIDEOS)} conditions)")
    source = Path(path)
    if not source.exists():
        raise ZooError(f"--condition-from {path} does not exist")
    trained = trained_data_config(model)
    changes = {"name": "folder", "folder_labels": False, "split": "all", "frames": model.spec.frames,
               "frame_stride": 1, "condition": "edges" if kind == "edges" else "none", "num_workers": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = source
        if source.is_file():  # the folder dataset reads directories: one file gets a directory of its own
            root = Path(tmp) / "videos"
            root.mkdir()
            os.symlink(source.resolve(), root / source.name)
        config = update_dataclass(trained, {**changes, "root": str(root), "index_cache": tmp}, "data")
        dataset = build_dataset("folder", config)
        usable = [i for i in range(len(dataset)) if dataset.num_starts(i) > 0][:num]
        if not usable:
            raise ZooError(f"--condition-from {path}: no video there holds {model.spec.frames} readable frames")
        items = [dataset.raw_item(i) for i in usable]
    if kind == "edges":
        return torch.stack([item["condition"] for item in items])
    return torch.stack([from_uint8(item["pixels"]) for item in items])  # source: the video itself, [C, T, H, W]
