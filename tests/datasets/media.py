"""Writes small real video files for the data-layer tests (PyAV encoders, no mocks)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frames_for(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, H, W, 3]: a moving gradient plus a bright square, different in every frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, 3)
    out = np.empty((n, height, width, 3), np.uint8)
    for t in range(n):
        for c in range(3):
            out[t, :, :, c] = (base[c] + 2 * x + 3 * y + 9 * t * (c + 1)) % 256
        s = max(2, min(height, width) // 4)
        top, left = (3 * t) % max(1, height - s), (5 * t) % max(1, width - s)
        out[t, top : top + s, left : left + s] = 255
    return out


def write(path: str | Path, n: int = 30, height: int = 60, width: int = 80, fps: float | Fraction = 25,
          codec: str = "mpeg4", seed: int = 0, gop: int = 12) -> Path:
    """Write `n` frames as AVI/MPEG-4 (`codec="mpeg4"`), MP4/H.264 (`codec="libx264"`) or AVI/MJPEG
    (`codec="mjpeg"`) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = frames_for(n, height, width, seed)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"  # FFmpeg's MJPEG encoder takes full range
        stream.codec_context.gop_size = gop
        if codec == "mpeg4":
            stream.codec_context.bit_rate = 800_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def claim_frames(path: str | Path, count: int) -> Path:
    """Rewrite an AVI's headers to claim `count` frames (avih dwTotalFrames, strh dwLength, OpenDML dmlh), as a
    damaged or crafted file does; the frames themselves stay as written."""
    import struct

    path = Path(path)
    data = bytearray(path.read_bytes())
    for tag, offset in ((b"avih", 16), (b"strh", 32), (b"dmlh", 0)):  # where each chunk holds the frame count
        at = data.find(tag)  # the headers come first, before any frame data could spell a tag
        if at >= 0:
            struct.pack_into("<I", data, at + 8 + offset, count)
    path.write_bytes(bytes(data))
    return path
