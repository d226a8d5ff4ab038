"""Reading video files: container metadata (PyAV), exact frames by index (decord, PyAV fallback).

Decoders follow notes/data_loading.md Sec. 4.3: a decord `VideoReader` is created inside the calling process (so in
each DataLoader worker, never before the fork, decord #294), reads only the requested frames with `get_batch`, and
is dropped straight away (its buffers grow otherwise, decord #197). Files decord cannot open go to PyAV.

decord is optional: PyPI has wheels only for x86-64 Linux and Windows, so elsewhere (macOS, Linux aarch64) it is not
installed and `auto` reads everything with PyAV. `video_reader` says which reader a decoder setting really uses; runs
and evaluation protocols record it, since two decoders can disagree on pixels.

Cost bounds (hostile or damaged files). `probe` refuses a header whose frame count the file is too small to hold
(`plausible_frames`): FFmpeg, decord and the clip sampler all trust that count, and decord aborts the whole process
(`std::bad_alloc`, uncatchable) on a 12 KB AVI claiming 2e9 frames, so such a file is a bad file before decord ever
opens it. Decoding holds at most `SOURCE_CHUNK_BYTES` of source-resolution pixels: `read_frames` resizes each chunk
as it is decoded, so a clip of a large source costs one chunk, not `frames` full-resolution frames.

Stream choice is deliberate and decoder-independent: `probe` picks the video stream with the most pixels (ties: the
first), or the n-th video stream when `video_stream` is set. decord 0.6 has no stream argument (it takes FFmpeg's
"best" stream), so files with more than one video stream are always read by PyAV with the chosen stream.

Forks (DataLoader workers, `ddp_fork`): PyAV >= 15 keeps one swscale context per thread, with its own slice threads.
A forked child inherits the context but not its threads, and freeing it there (the first frame of another size)
waits forever. `_forget_inherited_reformatter` runs in every forked child and sets the inherited context aside,
never freed, so the child builds its own.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)
DECODERS = ("auto", "decord", "pyav")
DECORD_MISSING = ("decord is not installed (PyPI has decord wheels only for x86-64 Linux and Windows); "
                  "use data.decoder=auto or pyav, or see docs/platforms.md for building decord")


_INHERITED_REFORMATTERS: list = []  # swscale contexts of a parent process: freeing one in a forked child hangs


def _forget_inherited_reformatter() -> None:
    """In a forked child: keep PyAV's per-thread swscale context of the parent alive forever and out of use."""
    frame_module = sys.modules.get("av.video.frame")
    local = getattr(frame_module, "_thread_local", None)
    inherited = getattr(local, "reformatter", None)
    if inherited is not None:
        _INHERITED_REFORMATTERS.append(inherited)
        local.reformatter = None


os.register_at_fork(after_in_child=_forget_inherited_reformatter)


def decord_available() -> bool:
    """Whether decord imports here (not cached: a process that blocks the import later is answered truthfully)."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def video_reader(decoder: str) -> str:
    """The reader(s) a `data.decoder` setting uses here, with versions, e.g. `decord 0.6.0 + PyAV 14.0.1`.

    `auto` with decord installed reads most clips with decord and the rest (several video streams, clips with a file's
    last frame, files decord fails on) with PyAV, hence both names.
    """
    import av

    pyav = f"PyAV {av.__version__}"
    if decoder == "pyav" or (decoder == "auto" and not decord_available()):
        return pyav
    import decord

    return f"decord {decord.__version__}" + (f" + {pyav}" if decoder == "auto" else "")


# The smallest a stored frame can be: every container spends at least this on each frame's own record (AVI: an
# 8-byte chunk header plus a 16-byte idx1 entry; MP4: a 4-byte sample size plus a 4-byte NAL length; Matroska: a
# block header), before any coded picture. A header claiming more frames than `size / MIN_BYTES_PER_FRAME` is
# damaged or crafted.
MIN_BYTES_PER_FRAME = 8
SOURCE_CHUNK_BYTES = 32 * 2**20  # source-resolution RGB pixels held at once while decoding (then resized)


class DecodeError(RuntimeError):
    """A video could not be read (missing, empty, corrupt, unsupported codec, fewer frames than indexed)."""


@dataclass(frozen=True)
class VideoMeta:
    """Container metadata of one file's chosen video stream."""

    frames: int  # frame count (from the container, or counted packets when the container does not say)
    fps: float  # average frame rate
    width: int
    height: int
    stream: int  # container stream index of the chosen video stream
    video_streams: int  # how many video streams the file has


def probe(path: str, video_stream: int | None = None) -> VideoMeta:
    """Read container metadata only (no decoding) and choose the video stream.

    Args:
        path: video file.
        video_stream: n-th video stream (0-based), or None for the one with the most pixels.

    Raises:
        DecodeError: unreadable container, no video stream, or no frames.
    """
    import av

    try:
        with av.open(path, metadata_errors="ignore") as container:
            streams = list(container.streams.video)
            if not streams:
                raise DecodeError(f"{path}: no video stream")
            decodable = [s for s in streams if s.codec_context is not None]  # None: FFmpeg knows no such codec
            if video_stream is None:
                if not decodable:
                    raise DecodeError(f"{path}: FFmpeg has no decoder for its video codec")
                chosen = max(decodable, key=lambda s: (s.codec_context.width * s.codec_context.height, -s.index))
            elif video_stream < len(streams):
                chosen = streams[video_stream]
                if chosen.codec_context is None:
                    raise DecodeError(f"{path}: FFmpeg has no decoder for video stream {video_stream}'s codec")
            else:
                raise DecodeError(f"{path}: has {len(streams)} video streams, data.video_stream={video_stream}")
            frames = int(chosen.frames or 0)
            if frames <= 0:  # e.g. Matroska stores no count: count packets (demux only, no decoding)
                frames = sum(1 for p in container.demux(chosen) if p.size > 0)
            rate = chosen.average_rate or chosen.guessed_rate or 0
            meta = VideoMeta(frames, float(rate), chosen.codec_context.width, chosen.codec_context.height,
                             chosen.index, len(streams))
    except DecodeError:
        raise
    except Exception as e:  # PyAV raises many types (InvalidDataError, OSError, ...)
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from None
    if meta.frames <= 0 or meta.width <= 0 or meta.height <= 0:
        raise DecodeError(f"{path}: no decodable frames ({meta})")
    check_plausible(path, meta, os.path.getsize(path))
    return meta


def plausible_frames(size: int) -> int:
    """The most frames a file of `size` bytes can hold (`MIN_BYTES_PER_FRAME` each)."""
    return size // MIN_BYTES_PER_FRAME


def check_plausible(path: str, meta: VideoMeta, size: int) -> None:
    """Refuse metadata a file of `size` bytes cannot hold (run on probes and on index-cache entries alike).

    Raises:
        DecodeError: the frame count exceeds `plausible_frames(size)`.
    """
    if meta.frames > plausible_frames(size):
        raise DecodeError(f"{path}: header claims {meta.frames} frames in a {size}-byte file (at most "
                          f"{plausible_frames(size)} fit at {MIN_BYTES_PER_FRAME} bytes per frame); damaged or "
                          "crafted header")


def read_frames(path: str, indices: list[int], meta: VideoMeta, decoder: str = "auto", threads: int = 1,
                resize: Resize | None = None) -> np.ndarray:
    """Decode exactly the frames `indices` (presentation order, 0-based) of the chosen stream.

    Args:
        path: video file.
        indices: non-decreasing frame numbers, all < meta.frames.
        meta: the file's `probe` result (chooses the stream, checks the size).
        decoder: auto (decord, then PyAV) | decord | pyav.
        threads: decoder threads.
        resize: applied to each chunk of at most `chunk_frames(meta)` source frames (uint8 `[t, H, W, 3]` ->
            uint8 `[t, h, w, 3]`) as soon as it is decoded, so at most `SOURCE_CHUNK_BYTES` of source-resolution
            pixels are held; None returns the source size.

    Returns:
        uint8 `[T, H, W, 3]` RGB (or what `resize` makes of it), T = len(indices).

    Raises:
        DecodeError: when no decoder returns the requested frames.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if any(later < earlier for earlier, later in zip(indices, indices[1:])):
        raise ValueError(f"frame indices must be non-decreasing, got {indices}")
    if decoder == "decord" and not decord_available():
        raise DecodeError(DECORD_MISSING)
    chunk = chunk_frames(meta)
    if use_decord_for(path, indices, meta, decoder):
        try:
            return _assemble(_decord_chunks(path, indices, threads, chunk), indices, meta, path, resize)
        except Exception as e:
            if decoder == "decord":
                raise DecodeError(f"{path}: decord: {e}") from None
            _DECORD_FAILED.add(path)
            log.info("decord cannot read %s (%s); using PyAV for it", path, e)
    try:
        return _assemble(_pyav_chunks(path, indices, meta, threads, chunk), indices, meta, path, resize)
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(f"{path}: PyAV: {type(e).__name__}: {e}") from None


Resize = Callable[[np.ndarray], np.ndarray]


def chunk_frames(meta: VideoMeta) -> int:
    """How many source frames of this stream fit in `SOURCE_CHUNK_BYTES` (at least one)."""
    return max(1, SOURCE_CHUNK_BYTES // (meta.width * meta.height * 3))


_DECORD_FAILED: set[str] = set()  # per process: files decord failed on, read by PyAV from then on


def use_decord_for(path: str, indices: list[int], meta: VideoMeta, decoder: str) -> bool:
    """Whether `read_frames` asks decord first.

    In `auto` mode PyAV reads everything where decord is not installed, and otherwise files with several video
    streams (decord cannot choose one), files decord failed on, and clips that include the file's last frame: decord
    0.6's `get_batch` silently returns a wrong last frame in a few percent of calls (seen on UCF-101's XviD AVI,
    `test.avi` frame 163: 2-3 in 150 reads).
    """
    if decoder != "auto":
        return decoder == "decord"
    touches_end = bool(indices) and max(indices) >= meta.frames - 1
    return (meta.video_streams == 1 and path not in _DECORD_FAILED and not touches_end
            and decord_available())


def _assemble(chunks: Iterator[np.ndarray], indices: list[int], meta: VideoMeta, path: str,
              resize: Resize | None) -> np.ndarray:
    """Check each decoded chunk's size, resize it straight away, and join the chunks into one clip."""
    expected = (meta.height, meta.width, 3)
    out = []
    for chunk in chunks:
        if chunk.shape[1:] != expected:
            raise DecodeError(f"{path}: decoded frames of {chunk.shape[1:]}, expected {expected}")
        out.append(chunk if resize is None else np.asarray(resize(chunk)))
    decoded = sum(len(c) for c in out)
    if decoded != len(indices):
        raise DecodeError(f"{path}: decoded {decoded} frames, expected {len(indices)}")
    if not out:
        return np.zeros((0, *expected), np.uint8)
    return out[0] if len(out) == 1 else np.concatenate(out)


def _decord_chunks(path: str, indices: list[int], threads: int, size: int) -> Iterator[np.ndarray]:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
    try:
        if indices and indices[-1] >= len(reader):
            raise DecodeError(f"{path}: frame {indices[-1]} requested, decord sees {len(reader)} frames")
        for begin in range(0, len(indices), size):
            yield reader.get_batch(indices[begin : begin + size]).asnumpy()
    finally:
        reader.seek(0)  # releases decoded buffers held after get_batch (decord #197)
        del reader


def _pyav_chunks(path: str, indices: list[int], meta: VideoMeta, threads: int, size: int) -> Iterator[np.ndarray]:
    import av

    pending: list[np.ndarray] = []
    k = 0  # next position of `indices` to fill
    with av.open(path) as container:
        stream = container.streams[meta.stream]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for n, frame in enumerate(container.decode(stream)):
            if k == len(indices):
                break
            if n < indices[k]:
                continue
            picture = frame.to_ndarray(format="rgb24")
            while k < len(indices) and indices[k] == n:  # a repeated index takes the same picture again
                pending.append(picture)
                k += 1
                if len(pending) == size:
                    yield np.stack(pending)
                    pending = []
    if k < len(indices):
        raise DecodeError(f"{path}: frame {indices[k]} requested, the stream ended before it")
    if pending:
        yield np.stack(pending)


def iter_all_frames(path: str, meta: VideoMeta, decoder: str = "auto", threads: int = 1, chunk: int = 64,
                    resize: Resize | None = None):
    """Yield every frame of the chosen stream in chunks: uint8 `[<=chunk, H, W, 3]` (or resized by `resize`, as in
    `read_frames`), through the same decoder choice as `read_frames` (so prepared frames equal streamed ones)."""
    for begin in range(0, meta.frames, chunk):
        yield read_frames(path, list(range(begin, min(begin + chunk, meta.frames))), meta, decoder, threads, resize)
