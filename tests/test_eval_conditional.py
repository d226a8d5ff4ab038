"""Scoring and sampling a conditional model (vid2vid on shapes' segmentation maps) end to end: the held-out clips
(split and seed), the seeded translations, each metric recomputed by hand from them, the rows, DDP == 1 process, and
the one-line refusals of what does not apply."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.commands import printed_lines
from tests.conftest import REPO
from zoo.cli import main
from zoo.config import DataConfig, heldout_data_config, resolve_config
from zoo.datasets import build_dataset
from zoo.evaluation import EvalRequest, evaluate
from zoo.leaderboard import read_rows
from zoo.metrics.feature_metric import as_pixels
from zoo.models import load_model
from zoo.registry import MODELS, load_all
from zoo.training import fit

load_all()
TINY = REPO / "experiments" / "vid2vid" / "tiny.yaml"
N = 6  # held-out clips: three batches of 2, so two ranks hold different numbers of batches


@pytest.fixture(scope="module")
def vid2vid_ckpt(tmp_path_factory):
    """A 2-step vid2vid of tiny.yaml: 8-frame shapes clips (the shapes detector needs at least 8 frames)."""
    run_dir = tmp_path_factory.mktemp("vid2vid")
    config = resolve_config("vid2vid", "shapes", MODELS.get("vid2vid").config_class, [TINY],
                            [f"train.run_dir={run_dir}"])
    assert config.data.frames == 8
    fit(config)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))


def _by_hand(ckpt, num: int, batch_size: int, seed: int):
    """The held-out items and the translations the protocol defines: items 0..num-1 of the test split at data seed
    + 1, batch b translated with noise seeded by (seed, b)."""
    model = load_model(ckpt)
    trained = DataConfig(**{k: v for k, v in model.experiment["data"].items()})
    config = heldout_data_config(dataclasses.replace(trained, frames=model.spec.frames, frame_stride=1))
    assert (config.split, config.seed) == ("test", trained.seed + 1) and config.condition == "segmentation"
    dataset = build_dataset(config.name, config)
    items = [dataset.raw_item(i) for i in range(num)]
    fakes = []
    for b in range(0, num, batch_size):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + b // batch_size)
        condition = torch.stack([item["condition"] for item in items[b : b + batch_size]])
        with torch.no_grad():
            fakes.append(as_pixels(model.translate(condition, generator=generator)))
    return items, torch.cat(fakes)


def _psnr(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over clips of the mean over frames of 10 log10(1 / MSE), pixels in [0, 1]."""
    per_clip = []
    for f, r in zip(fake.double() / 255, real.double() / 255):
        mse = ((f - r) ** 2).flatten(1).mean(1)  # per frame
        per_clip.append((10 * torch.log10(1 / mse)).mean())
    return float(torch.stack(per_clip).mean())


def test_conditional_scores_are_the_translations_of_the_heldout_conditions(vid2vid_ckpt, tmp_path):
    board = tmp_path / "lb.csv"
    results = evaluate(EvalRequest(metrics=["psnr", "ssim", "warp_error", "mask_iou", "fvd_shapes"],
                                   ckpt=str(vid2vid_ckpt), num_samples=N, batch_size=2, seed=3,
                                   leaderboard=str(board), samples_gif=False))
    values = {r.metric: r.values for r in results}
    items, fake = _by_hand(vid2vid_ckpt, N, 2, seed=3)
    real = torch.stack([item["pixels"] for item in items])
    assert values["psnr"]["psnr"] == pytest.approx(_psnr(fake, real), rel=1e-6)  # torchmetrics: float32 range
    from zoo.metrics.conditional import MaskIoU, VideoSSIM, WarpError

    ssim, warp, iou = VideoSSIM(), WarpError(), MaskIoU()
    ssim.update(fake, real)
    warp.update(fake, torch.stack([i["flow"] for i in items]), torch.stack([i["flow_valid"] for i in items]))
    iou.update(fake, torch.stack([i["segmentation"] for i in items]))
    assert values["ssim"]["ssim"] == pytest.approx(float(ssim.compute()), rel=1e-9)
    assert values["warp_error"]["warp_error"] == pytest.approx(float(warp.compute()), rel=1e-9)
    assert values["mask_iou"]["mask_iou"] == pytest.approx(float(iou.compute()), rel=1e-9)
    [fvd] = [r for r in results if r.metric == "fvd"]
    assert fvd.preset.name == "fvd_shapes_heldout" and (fvd.num_real, fvd.num_fake, fvd.preset.frames) == (N, N, 8)
    assert math.isfinite(fvd.values["fvd"]) and fvd.values["fvd"] > 0
    rows = read_rows(board)
    assert {r["metric"] for r in rows} == {"psnr", "ssim", "warp_error", "mask_iou", "fvd"}
    assert {r["split"] for r in rows} == {"test"}, "rows name the held-out split they were scored on"
    extra = {r["metric"]: r["extra"] for r in rows}
    assert all('"condition": "segmentation"' in e for e in extra.values())
    assert '"flow": "true flow of the shapes targets"' in extra["warp_error"]
    [mask_row] = [r for r in rows if r["metric"] == "mask_iou"]
    assert mask_row["detector"] == "shapes_seg" and mask_row["detector_verified"] == "True"


def test_two_ranks_score_what_one_process_scores(vid2vid_ckpt):
    """Batches go to rank b % 2 with their noise seeded by b: the ranks' summed states give the one-process value."""
    request = EvalRequest(metrics=["psnr", "warp_error"], ckpt=str(vid2vid_ckpt), num_samples=N, batch_size=2,
                          leaderboard=None)
    one = {r.metric: r.values[r.metric] for r in evaluate(request)}
    two = {r.metric: r.values[r.metric] for r in evaluate(dataclasses.replace(request, devices=2))}
    assert two == pytest.approx(one, rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["--metric", "is_shapes"], "a conditional model is scored against its targets with fvd, kvd, prdc presets"),
    (["--metric", "psnr", "--stats-only"], "--stats-only does not apply to a conditional model"),
    (["--metric", "psnr", "--bootstrap", "10"], "--bootstrap does not apply to a conditional model"),
    (["--metric", "psnr", "--num-samples", "5000"], "pass --num-samples"),
    (["--metric", "psnr", "--resolution", "32"], "translates at the resolution it was trained on (16)"),
    (["--metric", "psnr", "--set", "data.condition=edges"], "the checkpoint translates segmentation conditions"),
])
def test_what_does_not_apply_to_a_conditional_model_is_one_line(vid2vid_ckpt, argv, message, capsys):
    assert main(["eval", "--ckpt", str(vid2vid_ckpt), "--no-leaderboard", *argv]) == 2
    err = [line for line in printed_lines(capsys.readouterr().err) if line.startswith("zoo eval")]
    assert len(err) == 1 and message in err[0], err


def test_an_unconditional_model_refuses_conditional_metrics_and_condition_flags(tmp_path, capsys):
    run_dir = tmp_path / "moco"
    tiny = REPO / "experiments" / "mocogan" / "tiny.yaml"
    fit(resolve_config("mocogan", "shapes", MODELS.get("mocogan").config_class, [tiny],
                       [f"train.run_dir={run_dir}", "train.max_steps=1"]))
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["eval", "--ckpt", ckpt, "--metric", "warp_error", "--no-leaderboard"]) == 2
    err = printed_lines(capsys.readouterr().err)[-1]
    assert err == ("zoo eval: error: --metric warp_error compares a conditional model's translations with their real "
                   "targets; mocogan (an unconditional model) has no conditions to translate: use fvd, kvd, is, "
                   "prdc, acd, bpd or a preset")
    assert main(["sample", "--ckpt", ckpt, "--condition-from", str(tmp_path), "--out", str(tmp_path / "s.gif")]) == 2
    assert "samples from noise and takes no --condition-from" in capsys.readouterr().err


def test_sample_writes_condition_output_and_target_side_by_side(vid2vid_ckpt, tmp_path, capsys):
    out = tmp_path / "grid.gif"
    assert main(["sample", "--ckpt", str(vid2vid_ckpt), "--num", "4", "--out", str(out), "--tile", "0"]) == 0
    assert "translations of 4 held-out conditions" in capsys.readouterr().out
    with Image.open(out) as gif:
        width, height, frames = gif.width, gif.height, gif.n_frames
    block = 2 * 16 + 3 * 2  # a 2 x 2 grid of 16-pixel clips with 2-pixel padding (make_grid)
    assert (width, height, frames) == (3 * block + 2 * 8, block, 8), "three blocks with two 8-pixel gaps"
    assert main(["sample", "--ckpt", str(vid2vid_ckpt), "--condition-from", str(tmp_path), "--out",
                 str(tmp_path / "b.gif")]) == 2
    assert "translates segmentation maps, which a video does not hold" in capsys.readouterr().err


def test_condition_from_videos_translates_their_edges(tmp_path, capsys):
    """An edges model takes the user's own videos: their Canny maps, with the thresholds it trained with."""
    run_dir = tmp_path / "edges"
    fit(resolve_config("vid2vid", "shapes", MODELS.get("vid2vid").config_class, [TINY],
                       [f"train.run_dir={run_dir}", "data.condition=edges", "train.max_steps=1", "data.frames=6"]))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert main(["eval", "--ckpt", str(ckpt), "--metric", "fvd_shapes", "--no-leaderboard"]) == 2
    assert printed_lines(capsys.readouterr().err)[-1] == (
        "zoo eval: error: --metric fvd_shapes: shapes_net needs clips of at least 8 frames, and this vid2vid "
        "translates 6-frame clips; score it with psnr / ssim / warp_error / mask_iou, or train it on longer clips")
    videos = tmp_path / "mine"
    assert main(["data", "synth", "--out", str(videos), "--num", "3", "--frames", "8", "--resolution", "24"]) == 0
    capsys.readouterr()
    model = load_model(ckpt)
    from zoo.translate import conditions_from

    condition = conditions_from(str(videos), model, 2)
    assert condition.shape == (2, 1, 6, 16, 16) and set(np.unique(condition.numpy())) <= {0.0, 1.0}
    assert condition.sum() > 0, "a moving shape has edges"
    out = tmp_path / "edges.gif"
    assert main(["sample", "--ckpt", str(ckpt), "--condition-from", str(videos), "--num", "2", "--out", str(out)]) == 0
    assert f"translations of 2 videos of {videos}" in capsys.readouterr().out and out.is_file()


def test_warp_error_on_a_paired_folder_reads_its_flow_files(vid2vid_ckpt, tmp_path):
    """Held-out pairs of a paired folder with user flow files (PNG label maps as the segmentation source): the row
    records the files (and that they hold no mask) as its flow."""
    from tests.datasets.test_paired_flow import add_pair, constant_flow, translating

    root = tmp_path / "pairs"
    for k, name in enumerate(("c", "d")):
        velocity = (1.0 + k, 0.5)
        add_pair(root / "test", name, translating(8, 16, 16, velocity), forward=constant_flow(8, 16, 16, velocity))
        for t in range(8):  # the source: label ids 0..3 (lossless PNG)
            labels = np.full((16, 16), (t + k) % 4, np.uint8)
            Image.fromarray(labels).save(root / "test" / "source" / name / f"{t:05d}.png")
    request = EvalRequest(metrics=["warp_error"], ckpt=str(vid2vid_ckpt), num_samples=2, batch_size=2, seed=1,
                          data="paired", data_root=str(root), data_sets=["data.condition_classes=4",
                                                                         f"data.index_cache={tmp_path / 'index'}"],
                          leaderboard=None, samples_gif=False)
    [row] = evaluate(request)
    assert row.values["flow"] == ("user-supplied flow files (test/flow); no mask or backward flow in the files: every "
                                  "pixel counts as valid")
    assert math.isfinite(row.values["warp_error"]) and row.values["warp_error"] > 0
