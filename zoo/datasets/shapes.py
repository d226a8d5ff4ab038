"""`shapes`: a procedural video dataset that needs no download; the default for demos and tests.

Each video shows one textured shape (circle, square or triangle) on a plain background, moving in one of three ways:
linear motion with bounces off the borders, rotation in place, or pulsing scale. The class label is the
(shape, motion) combination, 9 classes. Every item is a deterministic function of (seed, index), at any number of
frames, frame stride and resolution. Besides the video each item carries (exact, from the rigid motion itself)

* `segmentation`: long `[T, H, W]`, 0 = background, 1 + shape index on the shape;
* `flow`: float `[2, T-1, H, W]`, the true forward optical flow (dx, dy in pixels) from frame k to frame k+1 at
  frame k's pixels: the displacement of the surface point under each pixel; zero on the (static) background.
  `zoo.warp.warp(frame_{k+1}, flow_k)` reproduces frame k where `flow_valid`;
* `flow_back`: float `[2, T-1, H, W]`, the backward flow at frame k+1's pixels: the displacement to where the surface
  point under each pixel was at frame k (the analytic inverse of the motion); zero on the background.
  `zoo.warp.warp(frame_k, flow_back_k)` predicts frame k+1 where `flow_back_valid` (vid2vid's warp of the previous
  frame);
* `flow_valid`: bool `[T-1, H, W]`, frame k's pixel is still visible at k+1: a shape pixel whose surface point stays
  in the frame, or a background pixel the shape does not cover at k+1;
* `flow_back_valid`: bool `[T-1, H, W]`, frame k+1's pixel was visible at k: a shape pixel whose surface point was in
  the frame, or a background pixel the shape did not cover at k (False exactly on the background the shape uncovered);
* `keypoints`: float `[T, K, 2]`, K = 5 points fixed in the shape's own frame (`KEYPOINTS`: the centre, then the
  square's corners, the triangle's vertices and its base's midpoint, or four rim points of the circle), x, y in
  pixels with the centre of pixel column j at x = j (the convention of `zoo.warp`), so rotation is visible;
* the trajectory's parameters (what `shapes_net` learns to read back), float scalars unless noted:
  `hue` (of the shape colour, in [0, 1)), `background` (grey level in [0, 0.25]), `size` (pixels per shape unit at
  this resolution), `centre` (float `[2]`, x, y of the centre at the clip's first frame, pixels), `velocity`
  (float `[2]`, pixels per clip frame as drawn, before bounces flip its components; linear motion only,
  else zero), `rotation_speed` (rad per clip frame, signed;
  rotation only, else zero), `scale_pulse` (rad per clip frame of the scale oscillation; pulsing only, else zero).
  Per-clip-frame quantities include the frame stride.

Known change points (`data.change_frame` = k > 0, for prediction studies): at clip frame k the motion switches to
the next one (bounce -> rotate -> scale -> bounce), continuing from the pose the shape has there (bounce starts from
the centre reached, with the drawn velocity and the scale frozen; rotate turns from the angle reached; scale pulses
from the drawn size, sin starting at 0, so the size is continuous). Frames 0..k are the first motion, k+1.. the
second; each item records `change_frame` (long, = k) and `motion_after` (long, index into MOTIONS). The label and
the trajectory fields describe the first motion. Off (0), every video is what it was, draw for draw.

Conditions (`data.condition`, `conditions.py`): `segmentation` = one-hot of `segmentation` (C_c = 4: background + 3
shapes), `keypoints` = a Gaussian heatmap of sigma `data.keypoint_sigma` pixels per keypoint (C_c = 5), `edges` =
Canny edges of the frames (C_c = 1).

The stripe texture is fixed to the shape's own coordinates, so rotation is visible and the flow is checkable:
warping frame k+1 back along the flow reproduces frame k wherever the shape is visible in both.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from zoo.config import DataConfig
from zoo.datasets.base import ItemKey, VideoDataset
from zoo.datasets.conditions import keypoint_heatmaps, one_hot
from zoo.errors import ZooError
from zoo.frame_sampling import sparse_frame_times
from zoo.registry import register_dataset

SHAPES = ("circle", "square", "triangle")
MOTIONS = ("bounce", "rotate", "scale")
DEFAULT_NUM_VIDEOS = 4096
_H = math.sqrt(3) / 2
# Keypoints in each shape's own frame (shape units, y down), the centre first; the others turn with the shape.
KEYPOINTS = (
    ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)),  # circle: rim points at 0, 90, 180, 270 degrees
    ((0.0, 0.0), (-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)),  # square: its corners
    ((0.0, 0.0), (0.0, -1.0), (_H, 0.5), (-_H, 0.5), (0.0, 0.5)),  # triangle: its vertices, its base's midpoint
)
NUM_KEYPOINTS = len(KEYPOINTS[0])


def _local_coords(px, py, cx, cy, cos, sin, scale):
    """Pixel positions -> the shape's own frame (unit size): q = R(-theta) (p - c) / scale."""
    dx, dy = px - cx, py - cy
    return (cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale


def _signed_distance(shape: int, qx: torch.Tensor, qy: torch.Tensor) -> torch.Tensor:
    """Signed distance (in shape units, negative inside) to a unit circle, square or triangle."""
    if shape == 0:
        return torch.sqrt(qx**2 + qy**2) - 1.0
    if shape == 1:
        return torch.maximum(qx.abs(), qy.abs()) - 0.8
    # equilateral triangle with circumradius 1 (inradius 0.5), one vertex pointing up (-y)
    edges = [(0.0, 1.0), (math.sqrt(3) / 2, -0.5), (-math.sqrt(3) / 2, -0.5)]
    return torch.stack([nx * qx + ny * qy for nx, ny in edges]).amax(0) - 0.5


class _Trajectory:
    """One video's shape, colours and motion, as functions of continuous time (in source frames)."""

    def __init__(self, rng: np.random.Generator, resolution: int, change_time: float | None = None):
        self.label = int(rng.integers(len(SHAPES) * len(MOTIONS)))
        self.shape, self.motion = divmod(self.label, len(MOTIONS))
        self.change_time = change_time  # source frame of the motion switch, or None
        self.motion_after = (self.motion + 1) % len(MOTIONS)
        pulsing = self.motion == 2 or (change_time is not None and self.motion_after == 2)
        self.hue = hue = rng.uniform(0, 1)
        self.colour = torch.tensor(_hsv_to_rgb(hue, 0.75, 1.0), dtype=torch.float32)
        self.background = float(rng.uniform(0.0, 0.25))
        r = resolution
        self.size = rng.uniform(0.14, 0.2) * r  # pixels per shape unit
        reach = self.size * 1.45 * (1.4 if pulsing else 1.0)  # bounding radius incl. scale pulse
        self.lo, self.hi = reach, r - reach
        self.centre0 = rng.uniform(self.lo, self.hi, size=2)
        angle = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.04, 0.08) * r
        self.velocity = speed * np.array([math.cos(angle), math.sin(angle)])
        self.theta0 = rng.uniform(0, 2 * math.pi)
        self.omega = rng.choice([-1, 1]) * rng.uniform(0.15, 0.3)  # rad / frame
        self.phase = rng.uniform(0, 2 * math.pi)
        self.pulse = rng.uniform(0.25, 0.4)  # rad / frame of the scale oscillation

    def centre(self, t: float) -> tuple[float, float]:
        if self.motion != 0:
            return float(self.centre0[0]), float(self.centre0[1])
        return self._bounce(self.centre0, t)

    def _bounce(self, start, t: float) -> tuple[float, float]:
        span = self.hi - self.lo
        out = []
        for axis in range(2):  # reflect off the borders: a triangle wave in closed form
            u = (start[axis] - self.lo + self.velocity[axis] * t) % (2 * span)
            out.append(self.lo + (u if u <= span else 2 * span - u))
        return out[0], out[1]

    def angle(self, t: float) -> float:
        return self.theta0 + (self.omega * t if self.motion == 1 else 0.0)

    def scale(self, t: float) -> float:
        return self.size * (1.0 + 0.35 * math.sin(self.phase + self.pulse * t) if self.motion == 2 else 1.0)

    def pose(self, t: float) -> tuple[float, float, float, float]:
        if self.change_time is not None and t > self.change_time:
            return self._pose_after(t - self.change_time)
        cx, cy = self.centre(t)
        return cx, cy, self.angle(t), self.scale(t)

    def _pose_after(self, dt: float) -> tuple[float, float, float, float]:
        """The second motion, `dt` source frames after the switch, from the pose at the switch."""
        cx, cy, theta, scale = self.pose(self.change_time)
        if self.motion_after == 0:  # bounce from where the shape is, scale frozen
            cx, cy = self._bounce((cx, cy), dt)
        elif self.motion_after == 1:
            theta = theta + self.omega * dt
        else:
            scale = self.size * (1.0 + 0.35 * math.sin(self.pulse * dt))
        return cx, cy, theta, scale


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def render_clip(
    seed: int, index: int, frames: int, resolution: int, frame_stride: int = 1, start: int = 0,
    times: list[float] | None = None, change_frame: int = 0,
) -> dict[str, torch.Tensor]:
    """Render one clip of the `shapes` dataset (all frames at once).

    Args:
        seed, index: identify the video (deterministic).
        frames: clip length.
        resolution: height = width in pixels.
        frame_stride: source frames between consecutive clip frames.
        start: first source frame.
        times: instead of `start`, the clip's times in strided frames (sparse clips; `frames` is then ignored).
        change_frame: > 0: the motion switches at this clip frame (see the module docstring); not with `times`.

    Returns:
        `{"pixels": uint8 [T, H, W, 3], "label": long, "segmentation": long [T, H, W], "flow": float [2, T-1, H, W],
        "flow_back": float [2, T-1, H, W], "flow_valid": bool [T-1, H, W], "flow_back_valid": bool [T-1, H, W],
        "keypoints": float [T, K, 2]}` (see the module docstring) and the trajectory parameters of
        `trajectory_fields`.
    """
    if change_frame and times is not None:
        raise ValueError("shapes change points are at a clip frame: not with sparse clip times")
    change_time = start + change_frame * frame_stride if change_frame else None  # source frames
    traj = _Trajectory(np.random.default_rng([seed, index]), resolution, change_time)
    coords = torch.arange(resolution, dtype=torch.float32) + 0.5  # pixel centres; the frame spans [0, resolution]
    py, px = torch.meshgrid(coords, coords, indexing="ij")  # (H, W)
    times = [start / frame_stride + k for k in range(frames)] if times is None else list(times)
    poses = torch.tensor([traj.pose(t * frame_stride) for t in times], dtype=torch.float32)
    cx, cy, theta, scale = (poses[:, i, None, None] for i in range(4))  # each (T, 1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    qx, qy = _local_coords(px, py, cx, cy, cos, sin, scale)  # (T, H, W)
    coverage = (0.5 - _signed_distance(traj.shape, qx, qy) * scale).clamp(0, 1)  # 1-pixel anti-aliasing
    stripes = 0.6 + 0.4 * torch.cos(3 * math.pi * qx)  # texture fixed to the shape's own frame
    shade = traj.colour[:, None, None, None] * stripes  # (3, T, H, W)
    image = traj.background * (1 - coverage) + shade * coverage
    inside = coverage > 0.5  # (T, H, W)

    def place(k: slice, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape-frame points -> pixel positions at poses `k`: p = c + scale R(theta) q."""
        return (cx[k] + scale[k] * (cos[k] * x - sin[k] * y), cy[k] + scale[k] * (sin[k] * x + cos[k] * y))

    def in_frame(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x >= 0) & (x <= resolution) & (y >= 0) & (y <= resolution)

    # forward: where each surface point under a pixel of frame k is in frame k+1
    x_next, y_next = place(slice(1, None), qx[:-1], qy[:-1])  # (T-1, H, W)
    flow = torch.stack([(x_next - px) * inside[:-1], (y_next - py) * inside[:-1]])  # (2, T-1, H, W)
    # backward: where each surface point under a pixel of frame k+1 was in frame k (the inverse rigid motion)
    x_prev, y_prev = place(slice(0, -1), qx[1:], qy[1:])  # (T-1, H, W)
    flow_back = torch.stack([(x_prev - px) * inside[1:], (y_prev - py) * inside[1:]])
    # the one shape occludes only the static background: it covers background pixels ahead and uncovers them behind
    flow_valid = torch.where(inside[:-1], in_frame(x_next, y_next), ~inside[1:])
    flow_back_valid = torch.where(inside[1:], in_frame(x_prev, y_prev), ~inside[:-1])
    local = torch.tensor(KEYPOINTS[traj.shape], dtype=torch.float32)  # (K, 2)
    kx, ky = place(slice(None), local[:, 0], local[:, 1])  # (T, 1, K)
    keypoints = torch.stack([kx[:, 0], ky[:, 0]], dim=-1) - 0.5  # (T, K, 2), pixel-index convention
    return {
        "pixels": (image * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0),
        "label": torch.tensor(traj.label),
        "segmentation": inside.long() * (1 + traj.shape),
        "flow": flow,
        "flow_back": flow_back,
        "flow_valid": flow_valid,
        "flow_back_valid": flow_back_valid,
        "keypoints": keypoints,
        **trajectory_fields(traj, start, frame_stride),
        **({"change_frame": torch.tensor(change_frame), "motion_after": torch.tensor(traj.motion_after)}
           if change_frame else {}),
    }


def trajectory_fields(traj: _Trajectory, start: int = 0, frame_stride: int = 1) -> dict[str, torch.Tensor]:
    """The parameters the generator drew for one clip (see the module docstring), as float32 tensors."""
    moving, rotating, pulsing = traj.motion == 0, traj.motion == 1, traj.motion == 2
    f32 = torch.float32
    return {
        "hue": torch.tensor(traj.hue, dtype=f32),
        "background": torch.tensor(traj.background, dtype=f32),
        "size": torch.tensor(traj.size, dtype=f32),
        "centre": torch.tensor(traj.centre(start), dtype=f32),
        "velocity": torch.tensor(traj.velocity * frame_stride * moving, dtype=f32),
        "rotation_speed": torch.tensor(traj.omega * frame_stride * rotating, dtype=f32),
        "scale_pulse": torch.tensor(traj.pulse * frame_stride * pulsing, dtype=f32),
    }


@register_dataset(
    "shapes",
    description="procedural moving shapes (3 shapes x 3 motions = 9 classes) with segmentation and optical flow",
    paper="video-zoo's embedded default; no download",
)
class Shapes(VideoDataset):
    """Procedural moving-shapes videos, deterministic per (seed, index); see the module docstring.

    `num_videos` (default 4096) sets the dataset size; training draws a random start in [0, 4 * frames) from the
    sampler's draw seed, evaluation uses start 0.
    """

    conditions = ("none", "segmentation", "edges", "keypoints")

    def __init__(self, config: DataConfig):
        super().__init__(config)
        self.class_names = [f"{s}_{m}" for s in SHAPES for m in MOTIONS]
        self.length = config.num_videos or DEFAULT_NUM_VIDEOS
        if config.change_frame and not 0 < config.change_frame < config.frames - 1:
            raise ZooError(f"data.change_frame = {config.change_frame} must lie inside the clip: 1 .. frames - 2 = "
                           f"{config.frames - 2} (0 = no change point)")
        if config.change_frame and config.sparse_max_distance:
            raise ZooError("data.change_frame is a clip frame: not with data.sparse_max_distance (sparse clips)")

    def __len__(self) -> int:
        return self.length

    @property
    def condition_channels(self) -> int:
        own = {"segmentation": 1 + len(SHAPES), "keypoints": NUM_KEYPOINTS}
        return own[self.config.condition] if self.config.condition in own else super().condition_channels

    def condition_of(self, item: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        if c.condition == "segmentation":
            return one_hot(item["segmentation"], 1 + len(SHAPES))
        if c.condition == "keypoints":
            return keypoint_heatmaps(item["keypoints"], c.resolution, c.resolution, c.keypoint_sigma)
        return super().condition_of(item)

    def raw_item(self, key: ItemKey) -> dict[str, torch.Tensor]:
        return self.with_condition(self._render(key))

    def _render(self, key: ItemKey) -> dict[str, torch.Tensor]:
        index, draw = self.split_key(key)
        if not 0 <= index < self.length:
            raise IndexError(f"shapes index {index} out of range [0, {self.length})")
        c = self.config
        if c.sparse_max_distance and draw is not None:  # StyleGAN-V's sparse training clips
            length = max(4 * c.frames, c.sparse_max_distance + 1)  # a procedural video is as long as asked
            rng = np.random.default_rng([c.seed, 3, draw])
            times = sparse_frame_times(c.frames, c.sparse_max_distance, length, rng)
            item = render_clip(c.seed, index, c.frames, c.resolution, c.frame_stride, times=times)
            item["times"], item["video_length"] = torch.tensor(times, dtype=torch.float32), torch.tensor(float(length))
            return item
        start = 0 if draw is None else int(np.random.default_rng([c.seed, draw]).integers(4 * c.frames))
        return render_clip(c.seed, index, c.frames, c.resolution, c.frame_stride, start, change_frame=c.change_frame)

    def num_starts(self, index: int) -> int:
        return 4 * self.config.frames  # the range training starts are drawn from

    def pixels_at(self, index: int, start: int) -> torch.Tensor:
        if not 0 <= index < self.length:
            raise IndexError(f"shapes index {index} out of range [0, {self.length})")
        c = self.config
        return render_clip(c.seed, index, c.frames, c.resolution, c.frame_stride, start,
                           change_frame=c.change_frame)["pixels"]

    def label_of(self, index: int) -> int:
        return _Trajectory(np.random.default_rng([self.config.seed, index]), self.config.resolution).label
