import av
import numpy as np
import pytest
import torch
from PIL import Image

from zoo.errors import ZooError
from zoo.video_io import enlarge_factor, from_uint8, make_grid, side_by_side, to_uint8, write_video


def test_uint8_round_trip_is_exact_on_every_value():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16, 1).expand(2, 3, 16, 16, 3).contiguous()
    assert torch.equal(to_uint8(from_uint8(pixels)), pixels)


def test_from_uint8_layout_and_values():
    pixels = torch.randint(0, 256, (2, 4, 5, 6, 3), dtype=torch.uint8)
    videos = from_uint8(pixels)
    assert videos.shape == (2, 3, 4, 5, 6) and videos.is_contiguous()  # b c t h w <- b t h w c
    assert abs(videos[1, 2, 3, 4, 5].item() - (pixels[1, 3, 4, 5, 2].item() / 127.5 - 1)) < 1e-6
    assert videos.min() >= -1 and videos.max() <= 1
    assert torch.equal(from_uint8(pixels[0]), videos[0]), "one clip converts like a batch"


def test_to_uint8_range_and_rounding():
    videos = torch.tensor([-1.0, -2.0, 0.0, 1.0, 3.0]).reshape(1, 1, 5, 1, 1)
    assert to_uint8(videos).flatten().tolist() == [0, 0, 128, 255, 255]


def test_wrong_layout_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        to_uint8(torch.zeros(3, 8, 8, 8))


def test_grid_layout():
    videos = torch.full((5, 3, 4, 8, 8), -1.0)
    videos[1] = 1.0
    grid = make_grid(videos, ncol=3, padding=2)
    assert grid.shape == (4, 2 * 10 + 2, 3 * 10 + 2, 3)
    assert (grid[:, 2:10, 12:20] == 255).all() and (grid[:, 2:10, 2:10] == 0).all()
    both = side_by_side(videos[:2], videos[:2])
    assert both.shape[0] == 4 and both.dtype == np.uint8


def test_grid_enlarges_tiles_by_nearest_neighbour_for_viewing():
    videos = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    grid = make_grid(videos, ncol=2, padding=2, tile=96)  # 16 px -> 6x = 96 px tiles, separators stay 2 px
    assert grid.shape == (3, 96 + 4, 2 * 96 + 6, 3)
    pixels = to_uint8(videos).numpy()  # b t h w c
    tile = grid[:, 2:98, 100:196]  # the second video
    assert (tile == pixels[1].repeat(6, axis=1).repeat(6, axis=2)).all(), "each pixel becomes a 6x6 block"
    assert (grid[:, :, 98:100] == 255).all() and (grid[:, :2] == 255).all(), "thin white separators"
    assert make_grid(videos, tile=None).shape == make_grid(videos).shape == (3, 16 + 4, 2 * 16 + 6, 3)
    assert enlarge_factor(32, 96) == 3 and enlarge_factor(128, 96) == 1 and enlarge_factor(16, 0) == 1
    assert side_by_side(videos, videos).shape[1] == 96 + 4, "training grids are enlarged by default"


def test_gif_and_mp4_are_real_files(tmp_path):
    frames = np.zeros((6, 30, 33, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(6)[:, None, None] * 40
    gif = write_video(frames, tmp_path / "a.gif")
    with Image.open(gif) as image:
        assert image.n_frames == 6 and image.size == (33, 30)
    mp4 = write_video(frames, tmp_path / "a.mp4")
    with av.open(str(mp4)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6
    assert abs(int(decoded[-1][5, 5, 0]) - 200) < 8  # H.264 is lossy but close
    with pytest.raises(ZooError, match=".gif or .mp4"):
        write_video(frames, tmp_path / "a.avi")
