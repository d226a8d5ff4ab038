"""PyAV in a process forked after the parent decoded: DataLoader workers (fork) must not deadlock.

PyAV >= 15 keeps one swscale context per thread (`av.video.frame._thread_local.reformatter`), with its own slice
threads. A forked child inherits the context but not the threads; the first frame of another size made the child
free it, and it waited forever in `pthread_cond_destroy` (seen as a hung `zoo fit` epoch and a hung test run).
"""
import multiprocessing

import numpy as np

from zoo.datasets.decode import probe, read_frames
from zoo.video_io import write_video


def _decode_in_child(path: str, queue) -> None:
    frames = read_frames(path, [0, 2], probe(path), decoder="pyav")
    queue.put(frames.shape)


def test_a_forked_child_decodes_with_pyav_after_the_parent_did(tmp_path):
    rng = np.random.default_rng(0)
    small, large = tmp_path / "small.mp4", tmp_path / "large.mp4"
    write_video(rng.integers(0, 255, (4, 32, 48, 3), dtype=np.uint8), small)
    write_video(rng.integers(0, 255, (4, 96, 128, 3), dtype=np.uint8), large)
    assert read_frames(str(small), [0, 1], probe(str(small)), decoder="pyav").shape == (2, 32, 48, 3)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(str(large), queue))
    child.start()
    child.join(timeout=60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked child hung decoding with PyAV (inherited swscale context)"
    assert child.exitcode == 0 and queue.get(timeout=5) == (2, 96, 128, 3)
