"""Sparse frame times for models trained on a few frames per clip (StyleGAN-V, Skorokhodov et al. 2022, Sec. 3.3).

Shared by the data layer (which real frames to decode) and the models (at which times to generate fakes), so both
sides of the discriminator see the same distribution of time gaps.
"""

from __future__ import annotations

import numpy as np

# The gap palette of the official `configs/sampling/random.yaml` (`total_dists`).
GAP_PALETTE = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def sparse_frame_times(num_frames: int, max_distance: int, video_length: float, rng: np.random.Generator,
                       fractional: bool = False) -> list[float]:
    """Times (in frames) of `num_frames` frames of one clip, as the official random sampling draws them.

    The gap `d` between the first and last frame is drawn uniformly from the palette entries in
    `[num_frames - 1, min(video_length - 1, max_distance)]`; the first frame's offset uniformly so that the clip
    fits (a real number when `fractional`, as for the generator's times); the other frames at distinct integer
    steps strictly inside the gap.

    Args:
        num_frames: frames per clip (StyleGAN-V: 3).
        max_distance: largest gap, in frames (StyleGAN-V: 32).
        video_length: frames the video has.
        rng: the source of randomness.
        fractional: draw a real-valued offset.

    Returns:
        `num_frames` increasing times, the first >= 0, the last <= video_length - 1.
    """
    low, high = num_frames - 1, min(int(video_length) - 1, max_distance)
    if high < low:
        raise ValueError(f"a video of {video_length} frames cannot hold {num_frames} distinct frames")
    gaps = [d for d in GAP_PALETTE if low <= d <= high] or [high]
    gap = int(gaps[rng.integers(len(gaps))])
    room = video_length - gap - 1
    offset = float(rng.uniform(0, room)) if fractional else int(rng.integers(int(room) + 1))
    inner = sorted(rng.choice(np.arange(1, gap), size=num_frames - 2, replace=False).tolist()) if num_frames > 2 else []
    return [offset] + [offset + k for k in inner] + ([offset + gap] if num_frames > 1 else [])
