"""`zoo sample` refuses what it cannot honour up front, in one line with the limit, and never overwrites a file
unasked (issues 28.9, 28.12, 27.6).

Checkpoints are real files written here the way `zoo fit` writes them (`on_save_checkpoint` fills the zoo record)
from tiny untrained models, so each check runs in a second; what a refusal must prevent (allocating 15 GB, an
unbounded pixel-by-pixel loop) is never attempted.
"""

import dataclasses
import math

import decord
import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models.base import VideoSpec
from zoo.registry import MODELS
from zoo.video_io import grid_shape, make_grid, write_video


def save_checkpoint(model, path):
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return str(path)


@pytest.fixture(scope="module")
def mocogan_ckpt(tmp_path_factory):
    """A tiny MoCoGAN (8 frames of 32 x 32) saved as `<run>/checkpoints/last.ckpt`, zoo fit's layout."""
    cls = MODELS.get("mocogan")
    config = dataclasses.replace(cls.config_class(), ngf=8, ndf=8, image_batch_size=4)
    folder = tmp_path_factory.mktemp("ckpt") / "mocogan-shapes" / "checkpoints"
    folder.mkdir(parents=True)
    return save_checkpoint(cls(config, VideoSpec(frames=8, resolution=32, num_classes=0)), folder / "last.ckpt")


@pytest.fixture(scope="module")
def pixelcnn_ckpt(tmp_path_factory):
    """A tiny PixelCNN trained on 2-frame clips of 8 x 8: one sub-pixel at a time, so length is what costs."""
    cls = MODELS.get("pixelcnn")
    config = dataclasses.replace(cls.config_class(), hidden=6, layers=2, first_kernel=3, out_hidden=12,
                                 context_width=6, context_blocks=1)
    return save_checkpoint(cls(config, VideoSpec(frames=2, resolution=8)), tmp_path_factory.mktemp("px") / "p.ckpt")


def error_of(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("flags,message", [
    (["--fps", "nan"], "--fps must lie in [0.1, 240], got nan"),
    (["--fps", "inf"], "--fps must lie in [0.1, 240], got inf"),
    (["--fps", "1e-9"], "--fps must lie in [0.1, 240], got 1e-09"),
    (["--fps", "0"], "--fps must lie in [0.1, 240], got 0"),
    (["--fps", "241", "--out", "s.mp4"], "--fps must lie in [0.1, 240], got 241"),
    (["--fps", "60"], "--fps 60 is faster than a GIF plays (at most 50"),
    (["--seed", str(2**70)], f"--seed must lie in [0, 2**64-1] (what torch.Generator takes), got {2**70}"),
    (["--seed", str(2**64)], "--seed must lie in [0, 2**64-1]"),
    (["--seed", "-1"], "--seed must lie in [0, 2**64-1]"),  # torch would wrap it onto 2**64-1
    (["--num", "10000000"], "--num 10000000 is more than a viewing grid takes (at most 1024)"),
    (["--num", "0"], "--num must be at least 1, got 0"),
    (["--tile", "100000"], "--tile must be 0 (original size) or a pixel size up to 1024, got 100000"),
    (["--tile", "-1"], "--tile must be 0 (original size) or a pixel size up to 1024, got -1"),
    (["--num", "1024", "--tile", "1024"], "--num 1024 x --frames 8 at --tile 1024 needs about 48.3 GiB (at most 2 "
                                          "GiB); lower --num, --frames or --tile"),
    (["--frames", "2000", "--num", "1024"], "--frames 2000 is more than this mocogan model samples here (at most "
                                            "max(8 x its 8 training frames, 128) = 128)"),
])
def test_flags_out_of_range_are_refused_with_their_limit(mocogan_ckpt, tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    argv = ["sample", "--ckpt", mocogan_ckpt, *flags]
    if "--out" not in flags:
        argv += ["--out", "s.gif"]
    assert message in error_of(capsys, argv)
    assert list(tmp_path.iterdir()) == [], "nothing is written"


def test_the_memory_estimate_is_the_grid_make_grid_builds():
    videos = torch.zeros(5, 3, 4, 32, 32)
    assert make_grid(videos, tile=96).shape == grid_shape(5, 4, 32, 96) == (4, 2 + 2 * 98, 2 + 3 * 98, 3)
    assert make_grid(videos, tile=None).shape == grid_shape(5, 4, 32, None)
    # the refused case above: 32 x 32 tiles of 32 px enlarged 32x, 2 px apart, held twice; and the float videos
    assert math.prod(grid_shape(1024, 8, 32, 1024)) == 8 * (32 * 1026 + 2) ** 2 * 3
    assert (2 * 8 * (32 * 1026 + 2) ** 2 * 3 + 1024 * 3 * 8 * 32 * 32 * 4) / 2**30 == pytest.approx(48.29, abs=0.01)


def test_pixel_models_cannot_be_asked_for_unbounded_lengths(pixelcnn_ckpt, tmp_path, capsys):
    for frames in ("100000", "129"):
        err = error_of(capsys, ["sample", "--ckpt", pixelcnn_ckpt, "--frames", frames, "--out",
                                str(tmp_path / "s.gif")])
        assert err.endswith(f"--frames {frames} is more than this pixelcnn model samples here (at most max(8 x its 2 "
                            "training frames, 128) = 128)")
    assert not (tmp_path / "s.gif").exists()


def test_an_existing_out_is_kept_unless_force(mocogan_ckpt, tmp_path, capsys):
    out = tmp_path / "s.gif"
    out.write_bytes(b"the user's file")
    err = error_of(capsys, ["sample", "--ckpt", mocogan_ckpt, "--num", "2", "--out", str(out)])
    assert err == f"zoo sample: error: --out {out} already exists; pass --force to replace it, or choose another --out"
    assert out.read_bytes() == b"the user's file"
    assert main(["sample", "--ckpt", mocogan_ckpt, "--num", "2", "--out", str(out), "--force"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gif"], "no partial file is left beside it"


def test_out_that_cannot_be_a_file_is_one_line(mocogan_ckpt, tmp_path, capsys):
    folder = tmp_path / "grids.gif"
    folder.mkdir()
    err = error_of(capsys, ["sample", "--ckpt", mocogan_ckpt, "--out", str(folder), "--force"])
    assert err.endswith(f"--out {folder} is a directory; name a file in it, e.g. --out {folder / 'samples.gif'}")
    err = error_of(capsys, ["sample", "--ckpt", mocogan_ckpt, "--out", "/dev/null", "--force"])
    assert err.endswith("--out /dev/null is not a regular file; name a .gif or .mp4 file")
    (tmp_path / "note").write_text("a file")
    err = error_of(capsys, ["sample", "--ckpt", mocogan_ckpt, "--out", str(tmp_path / "note" / "s.gif")])
    assert err.endswith(f"--out {tmp_path / 'note' / 's.gif'}: {tmp_path / 'note'} is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grids.gif", "note"]


def test_write_video_errors_are_one_line():
    """What `zoo fit`'s sample grids and `zoo data synth` meet when the folder cannot be made."""
    frames = make_grid(torch.zeros(1, 3, 2, 8, 8)), REPO / "pyproject.toml" / "x.gif"
    with pytest.raises(ZooError, match=r"^cannot write .*pyproject\.toml/x\.gif: "):
        write_video(*frames)


def test_the_default_out_lands_in_ignored_runs(mocogan_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ZOO_HOME")
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--ckpt", mocogan_ckpt, "--num", "2"]) == 0
    written = tmp_path / "runs" / "samples" / "mocogan-shapes-last.gif"
    assert f"to {written.relative_to(tmp_path)}" in capsys.readouterr().out
    with Image.open(written) as gif:
        assert gif.n_frames == 8
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert "runs/" in (REPO / ".gitignore").read_text().splitlines(), "a checkout's git status stays clean"


def test_mp4_plays_at_the_fps_asked(mocogan_ckpt, tmp_path):
    assert main(["sample", "--ckpt", mocogan_ckpt, "--num", "1", "--fps", "2.5", "--out", str(tmp_path / "s.mp4")]) == 0
    reader = decord.VideoReader(str(tmp_path / "s.mp4"))
    assert len(reader) == 8 and reader.get_avg_fps() == pytest.approx(2.5)
