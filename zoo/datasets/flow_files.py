"""User-supplied optical flow of a `paired` folder's targets: `flow/<name>.npz` beside `source/` and `target/`.

The zoo does not run a flow estimator; the user runs theirs (RAFT, FlowNet2, ...) on each target video offline and
stores, per pair, one `.npz` (`np.savez` or `np.savez_compressed`) holding (T = the target's frames, H x W = its
source size in pixels, before any crop or resize):

* `forward`: float `[T-1, 2, H, W]`, flow k at frame k's pixels to frame k+1, channel 0 = x, 1 = y, in pixels:
  `zoo.warp.warp(frame_{k+1}, forward_k) ~ frame_k` (the layout of RAFT's per-pair outputs stacked on axis 0);
* `backward` (optional): float `[T-1, 2, H, W]`, flow k at frame k+1's pixels to frame k:
  `warp(frame_k, backward_k) ~ frame_{k+1}` (vid2vid's reference flow);
* `valid_forward`, `valid_backward` (optional): bool `[T-1, H, W]`, where each flow holds (not occluded).

A direction without its mask gets the forward-backward consistency check (Sundaram et al. 2010; Ruder et al. 2016's
occlusion test, as Lai et al. 2018 evaluate warping error) when both directions are there, else every pixel valid.
Files are read with `np.load(allow_pickle=False)` only; their headers are checked when the dataset is indexed,
their values (NaN, inf) when a clip's flows are read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.datasets.decode import DecodeError
from zoo.datasets.transforms import crop_square, resize_labels
from zoo.warp import warp

DIRECTIONS = {"forward": ("flow", "flow_valid"), "backward": ("flow_back", "flow_back_valid")}  # -> item keys
MASKS = {"forward": "valid_forward", "backward": "valid_backward"}
FILE_KEYS = ("forward", "backward", "valid_forward", "valid_backward")


def array_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of every array of an `.npz`, read from the `.npy` headers only (no data, no pickle).

    Raises:
        DecodeError: not a zip of `.npy` members.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise DecodeError(f"{path}: member {info.filename!r} is not a .npy array")
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                headers[info.filename[:-4]] = (tuple(shape), dtype)
            return headers
    except DecodeError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DecodeError(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None


def check_flow_file(path: Path, frames: int, width: int, height: int) -> tuple[str, ...]:
    """The arrays a flow file holds (in `FILE_KEYS` order), after checking its keys, dtypes and shapes against its
    target (`frames` frames of `width` x `height` pixels).

    Raises:
        DecodeError: the file's one-line problem.
    """
    headers = array_headers(path)
    unknown = sorted(set(headers) - set(FILE_KEYS))
    if unknown:
        raise DecodeError(f"{path}: unknown array {unknown[0]!r}; a flow file holds {', '.join(FILE_KEYS)}")
    if "forward" not in headers:
        raise DecodeError(f"{path}: no 'forward' array (float [T-1, 2, H, W])")
    for direction, mask in MASKS.items():
        if mask in headers and direction not in headers:
            raise DecodeError(f"{path}: {mask!r} without {direction!r}")
    for key, (shape, dtype) in headers.items():
        is_mask = key.startswith("valid_")
        if dtype.hasobject:
            raise DecodeError(f"{path}: {key!r} holds Python objects (pickled); store plain float / bool arrays")
        if (dtype != np.bool_) if is_mask else (dtype.kind != "f"):
            raise DecodeError(f"{path}: {key!r} is {dtype}; expected {'bool' if is_mask else 'float'}")
        layout = "[T-1, H, W]" if is_mask else "[T-1, 2, H, W]"
        if len(shape) != (3 if is_mask else 4) or (not is_mask and shape[1] != 2):
            raise DecodeError(f"{path}: {key!r} is {list(shape)}; expected {layout}"
                              + ("" if is_mask else " (x then y displacements)"))
        if shape[0] != frames - 1:
            raise DecodeError(f"{path}: {key!r} holds {shape[0]} flows; the target has {frames} frames, so "
                              f"{frames - 1} (one per consecutive pair)")
        if tuple(shape[-2:]) != (height, width):
            raise DecodeError(f"{path}: {key!r} is {shape[-1]}x{shape[-2]} pixels, the target {width}x{height}: "
                              "flows are at the target's source size")
    return tuple(k for k in FILE_KEYS if k in headers)


def read_flow_file(path: Path, first: int, count: int) -> dict[str, np.ndarray]:
    """Flows `first .. first + count - 1` of every array of a checked flow file (`np.load`, no pickle).

    Raises:
        DecodeError: unreadable, or a flow holds NaN or inf.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key][first : first + count] for key in archive.files}
    except Exception as e:  # zip, zlib and numpy errors of a truncated or corrupt file
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from None
    for key in DIRECTIONS:
        if key in arrays and not np.isfinite(arrays[key]).all():
            bad = int(np.flatnonzero(~np.isfinite(arrays[key]).reshape(len(arrays[key]), -1).all(1))[0]) + first
            raise DecodeError(f"{path}: {key!r} flow {bad} holds NaN or inf values")
    return arrays


def lands_inside(flow: torch.Tensor) -> torch.Tensor:
    """bool `[N, H, W]`: p + flow(p) lies within the pixel centres of the frame (`flow` float `[N, 2, H, W]`), where
    `warp` reads by interpolation rather than from its border padding."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    x, y = xs + flow[:, 0], ys + flow[:, 1]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def consistent(flow: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Forward-backward consistency (Sundaram et al. 2010, Ruder et al. 2016 eq. 6) of `flow` against the opposite
    direction's `other`, both float `[N, 2, H, W]` at the same frames' pixels as `warp` reads them: p is valid when
    p + flow(p) lies in the frame and |flow(p) + o|^2 < 0.01 (|flow(p)|^2 + |o|^2) + 0.5, o = other(p + flow(p))
    (bilinear). Returns bool `[N, H, W]`. Ruder et al.'s second test (motion boundaries) is not applied."""
    back = warp(other, flow)  # other read at p + flow(p)
    error = (flow + back).square().sum(1)
    bound = 0.01 * (flow.square().sum(1) + back.square().sum(1)) + 0.5
    return (error < bound) & lands_inside(flow)


def resize_flow(flow: torch.Tensor, resolution: int, policy: str, crop_shift: float = 0.0) -> torch.Tensor:
    """A flow field cropped and resized as `resize_frames` crops and resizes its frames.

    The field is sampled by nearest neighbour at pixel centres (`nearest-exact`, as `resize_labels`): every vector
    is one the estimator gave (bilinear blends the two motions across a motion boundary into a vector of neither),
    and the masks, resized alike, stay the masks of the very vectors kept. Displacements scale by the resize factor
    of each axis (R / crop width for x, R / crop height for y): pixel centres map linearly between the two grids.

    Args:
        flow: float `[N, 2, H, W]`, pixels, x then y.
        resolution, policy, crop_shift: as `resize_frames`.

    Returns:
        float32 `[N, 2, resolution, resolution]`.
    """
    x = crop_square(flow.permute(0, 2, 3, 1), policy, crop_shift).permute(0, 3, 1, 2).float()  # (N, 2, h, w)
    _, _, h, w = x.shape
    if (h, w) != (resolution, resolution) and len(x):
        x = F.interpolate(x, size=(resolution, resolution), mode="nearest-exact")
    scale = torch.tensor([resolution / w, resolution / h], dtype=torch.float32).view(1, 2, 1, 1)
    return (x * scale).contiguous()


def clip_flows(arrays: dict[str, np.ndarray], resolution: int, policy: str,
               crop_shift: float = 0.0) -> dict[str, torch.Tensor]:
    """A clip's item keys from its slice of a flow file (`read_flow_file`): `flow` / `flow_valid` from `forward`,
    `flow_back` / `flow_back_valid` from `backward` when present, as `shapes` gives them: flows float
    `[2, T-1, R, R]`, masks bool `[T-1, R, R]` (file masks, else the consistency check when both directions are
    there, computed at the source size before the crop, else all True), cropped and resized like the frames, and
    False where the resized flow leaves the clip's frame (its target pixel was cropped away)."""
    flows = {d: torch.from_numpy(arrays[d]).float() for d in DIRECTIONS if d in arrays}
    item = {}
    for direction, (flow_key, valid_key) in DIRECTIONS.items():
        if direction not in flows:
            continue
        flow = flows[direction]
        if MASKS[direction] in arrays:
            valid = torch.from_numpy(arrays[MASKS[direction]])
        elif len(flows) == 2:
            valid = consistent(flow, flows["backward" if direction == "forward" else "forward"])
        else:
            valid = torch.ones(flow.shape[0], *flow.shape[2:], dtype=torch.bool)
        resized = resize_flow(flow, resolution, policy, crop_shift)  # (T-1, 2, R, R)
        if len(valid):
            valid = resize_labels(valid.to(torch.uint8), resolution, policy, crop_shift).bool() & lands_inside(resized)
        else:
            valid = torch.ones(0, resolution, resolution, dtype=torch.bool)
        item[flow_key], item[valid_key] = resized.transpose(0, 1).contiguous(), valid
    return item
