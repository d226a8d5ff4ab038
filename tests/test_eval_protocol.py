"""What `zoo eval` scores by default and says while it does: the bench's clip length for a checkpoint, the protocol of
each row, an estimate after the first generated batch, no lines a user can do nothing about, every metric key in the
help, sample counts refused up front, and a `--fake-dir` with bad files scored on its good ones."""

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest

from tests.conftest import REPO
from zoo.cli import main
from zoo.evaluation import EvalRequest, evaluate
from zoo.leaderboard import read_rows
from zoo.metrics.presets import PRESETS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


@pytest.fixture(scope="module")
def diffusion_ckpt(tmp_path_factory):
    """A 2-step video diffusion checkpoint of the quick start's kind: 8 frames of 16x16 `shapes`."""
    run = tmp_path_factory.mktemp("vd") / "run"
    tiny = str(REPO / "experiments" / "video_diffusion" / "tiny.yaml")
    assert main(["fit", "--model", "video_diffusion", "--config", tiny, "--run-dir", str(run), "--max-steps", "2"]) == 0
    return run / "checkpoints" / "last.ckpt"


def error_of(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "video/s" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_checkpoint_is_scored_at_the_clip_length_the_bench_uses(diffusion_ckpt, tmp_path, capsys):
    """The quick start's 8-frame model: `zoo eval --metric fvd_shapes` scores 8-frame clips, the frames `zoo bench`
    scores it on, and gives the bench's number; the row and the printed table say 8 frames."""
    from zoo.bench import eval_frames
    from zoo.config import resolve_config
    from zoo.models.video_diffusion import VideoDiffusion

    tiny = REPO / "experiments" / "video_diffusion" / "tiny.yaml"
    bench_frames = eval_frames(resolve_config("video_diffusion", "shapes", VideoDiffusion.config_class, [tiny], []))
    assert bench_frames == 8
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "fvd_shapes", "--ckpt", str(diffusion_ckpt), "--num-samples", "6", "--num-real", "6",
            "--batch-size", "3", "--leaderboard", str(board)]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fvd_shapes: 8 frames (the checkpoint's own clip length, as `zoo bench` scores it" in out
    [row_line] = [line for line in out.splitlines() if line.startswith("fvd ")]
    assert row_line.split()[3:6] == ["8", "6", "6"], "frames, N real, N gen of the row"
    [row] = read_rows(board)
    assert json.loads(row["protocol"])["frames"] == 8 and row["preset"] == "fvd_shapes"
    bench = dataclasses.replace(PRESETS["fvd_shapes"], frames=bench_frames)  # what zoo bench passes
    [same] = evaluate(EvalRequest(metrics=[bench], ckpt=str(diffusion_ckpt), num_samples=6, num_real=6,
                                  batch_size=3, leaderboard=None))
    assert float(row["value"]) == same.values["fvd"]
    # a published protocol keeps its frames: fvd2048_16f scores 16 frames of any checkpoint
    from zoo.evaluation.protocol import resolve_presets
    from zoo.models.base import checkpoint_meta, read_checkpoint

    run = checkpoint_meta(read_checkpoint(diffusion_ckpt), source="ckpt")
    frames = {p.name: p.frames for p in resolve_presets(EvalRequest(metrics=["fvd", "fvd_shapes"]), run)}
    assert frames == {"fvd2048_16f": 16, "fvd_shapes": 8}
    assert resolve_presets(EvalRequest(metrics=["fvd_shapes"]))[0].frames == 16, "a folder: the preset's 16"


def test_the_first_generated_batch_gives_an_estimate_before_the_rest(diffusion_ckpt, capsys):
    from zoo.evaluation.report import estimate_line

    assert estimate_line(1.5, 16, 1024, 64) == ("first batch of 16 generated videos took 1.5 s: about 1.6 min for "
                                                "all 1024 (fewer --num-samples to go faster)")
    assert "about 2.67 h" in estimate_line(150.0, 16, 1024, 64)
    argv = ["eval", "--metric", "is_shapes", "--ckpt", str(diffusion_ckpt), "--num-samples", "9", "--batch-size", "3",
            "--no-leaderboard"]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("first batch")]
    first, total = (float(x) for x in re.fullmatch(
        r"first batch of 3 generated videos took ([\d.e+-]+) s: about ([\d.e+-]+) s for all 9 .*", line).groups())
    assert total == pytest.approx(3 * first, rel=0.01), "three batches at the first one's rate"
    assert out.index("first batch") < out.index("is       is_shapes"), "said before the result"


def test_the_output_holds_only_what_informs(diffusion_ckpt, tmp_path, capsys):
    """KVD of one TF-GAN block: no `= None` / `_undefined` lines (the row keeps the reason), no copy of the value
    under another name, and the real-features column is explained."""
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "kvd_shapes", "--metric", "prdc_shapes", "--ckpt", str(diffusion_ckpt),
            "--num-samples", "6", "--num-real", "6", "--batch-size", "6", "--leaderboard", str(board)]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "_undefined" not in out and "kvd_tfgan_block" not in out
    assert "coverage" not in out, "PRDC's value is its coverage: printed once"
    assert "precision = " in out and "density = " in out
    assert re.search(r"^real features: computed = extracted now and saved in .*; cached = read from there", out, re.M)
    kvd = next(r for r in read_rows(board) if r["metric"] == "kvd")
    extra = json.loads(kvd["extra"])
    assert extra["kvd_tfgan_block_stderr"] is None and "2 blocks" in extra["kvd_tfgan_block_stderr_undefined"]


def test_the_help_lists_every_metric_and_preset_and_each_is_accepted(capsys):
    from zoo.evaluation.protocol import resolve_presets
    from zoo.registry import METRICS, load_all

    load_all()
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("  ") and not line.startswith("  -")}
    from zoo.evaluation.conditional import conditional_presets
    from zoo.metrics.conditional import CONDITIONAL_METRICS

    assert set(METRICS.keys()) <= listed and {"fvd_shapes", "prdc", "acd", "acd_shapes", "psnr"} <= listed
    for key in METRICS.keys():
        if key in CONDITIONAL_METRICS:  # scores a conditional checkpoint's translations, N held-out clips
            run = {"model_name": "vid2vid", "spec": {"frames": 6}}
            [preset] = conditional_presets(EvalRequest(metrics=[key], num_samples=8), run)
            assert (preset.metric, preset.num_fake, preset.num_real, preset.frames) == (key, 8, 8, 6)
            continue
        [preset] = resolve_presets(EvalRequest(metrics=[key]))
        assert preset.metric == (PRESETS[key].metric if key in PRESETS else key)


# -- sample counts, up front -----------------------------------------------------------------------------------


def _features(preset, n: int, rng) -> np.ndarray:
    if preset.metric == "is":
        logits = rng.normal(size=(n, 9))
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return rng.normal(size=(n, 2 * 64 if preset.metric == "acd" else 8))


def _computes(preset) -> bool:
    """Whether the preset's metric gives a finite value (and secondaries) at its counts, on random features."""
    import torch

    from zoo.evaluation.protocol import build_metric, explain_undefined

    rng = np.random.default_rng(0)
    metric = build_metric(preset, None)
    if preset.num_real:
        metric.update(features=torch.from_numpy(_features(preset, preset.num_real, rng)), real=True)
    metric.update(features=torch.from_numpy(_features(preset, preset.num_fake, rng)), real=False)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty IS split
            value = explain_undefined(metric.results())[preset.metric]
    except ValueError:
        return False
    return value is not None and bool(np.isfinite(value))  # an undefined (NaN) value arrives as None


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "bpd"])
def test_each_presets_minimum_is_the_metrics_real_minimum(name):
    """`too_few_samples` refuses exactly the counts the metric cannot compute: one below the minimum it names
    fails in the metric itself, the minimum computes (KVD of 1025 generated videos: 2 blocks, 4 real clips)."""
    from zoo.metrics.presets import too_few_samples

    base = PRESETS[name]
    if base.metric == "kvd":
        base = dataclasses.replace(base, num_fake=1025)
    for side, flag in (("num_real", "--num-real"), ("num_fake", "--num-samples")):
        if side == "num_real" and not base.num_real:
            continue
        low = dataclasses.replace(base, **{side: 1})
        message = too_few_samples(low)
        if message is None:  # 1 is enough for this side
            assert _computes(low), name
            continue
        need = int(re.search(rf"pass {flag} (\d+) or more", message).group(1))
        assert message.startswith(f"{flag} 1 is too few for {name}: ")
        enough = dataclasses.replace(base, **{side: need})
        assert too_few_samples(enough) is None and _computes(enough), (name, side, need)
        short = dataclasses.replace(base, **{side: need - 1})
        assert too_few_samples(short) is not None and not _computes(short), (name, side, need)


def test_too_few_samples_are_refused_before_any_feature_is_extracted(diffusion_ckpt, tmp_path, capsys):
    base = ["eval", "--ckpt", str(diffusion_ckpt), "--no-leaderboard"]
    err = error_of(capsys, base + ["--metric", "fvd_shapes", "--num-real", "1", "--num-samples", "4"])
    assert err == ("zoo: error: --num-real 1 is too few for fvd_shapes: FVD needs at least 2 clips per side for a "
                   "covariance; pass --num-real 2 or more") or err.endswith(
        "--num-real 1 is too few for fvd_shapes: FVD needs at least 2 clips per side for a covariance; pass "
        "--num-real 2 or more")
    err = error_of(capsys, base + ["--metric", "kvd", "--num-real", "3"])  # 2048 generated: 2 blocks
    assert "--num-real 3 is too few for kvd2048_16f" in err and "--num-real 4 or more" in err
    err = error_of(capsys, base + ["--metric", "prdc_shapes", "--num-samples", "5"])
    assert "--num-samples 5 is too few for prdc_shapes" in err and "--num-samples 6 or more" in err
    err = error_of(capsys, base + ["--metric", "is", "--num-samples", "9"])
    assert "--num-samples 9 is too few for is2048_ucf" in err and "10 set(s)" in err
    assert not (tmp_path / "cache" / "stats").exists(), "refused before any real feature was extracted"


# -- a generated folder with bad files ---------------------------------------------------------------------------


def _folder(root, bad: bool):
    from tests.datasets.media import write

    for i in range(3):
        write(root / f"g{i}.avi", n=20, height=32, width=32, seed=i)
    if bad:  # named to sort first: among the files a folder's first videos are taken from
        whole = write(root / "a.mp4", n=20, height=32, width=32, codec="libx264", seed=9).read_bytes()
        (root / "a.mp4").write_bytes(whole[:3000])  # truncated: its container cannot be read
        (root / "b.avi").write_bytes(b"")  # zero bytes
    return root


def test_a_fake_dir_with_bad_files_is_scored_on_its_good_ones(tmp_path, capsys):
    """`--set data.max_bad_fraction=0.5`, the error's own advice, goes on: the 2 bad files of 5 are left out, the
    value is the good files' (a folder of those alone gives the same) and the row records how many were dropped."""
    bad, good = _folder(tmp_path / "bad", True), _folder(tmp_path / "good", False)
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "fvd_shapes", "--data", "shapes", "--resolution", "32", "--num-samples", "3",
            "--num-real", "3", "--batch-size", "3", "--leaderboard", str(board)]
    err = error_of(capsys, argv + ["--fake-dir", str(bad)])
    assert err.endswith("go on without them: --set data.max_bad_fraction=0.4")
    assert main(argv + ["--fake-dir", str(bad), "--set", "data.max_bad_fraction=0.5"]) == 0
    out = capsys.readouterr().out
    assert f"--fake-dir {bad}: 2 of 5 files could not be read, scored on the good ones (first: a.mp4)" in out
    assert main(argv + ["--fake-dir", str(good)]) == 0
    assert "could not be read" not in (out := capsys.readouterr().out) and "fake_bad_files" not in out
    with_bad, only_good = read_rows(board)
    assert with_bad["num_fake"] == only_good["num_fake"] == "3"
    assert with_bad["value"] == only_good["value"]
    assert json.loads(with_bad["extra"])["fake_bad_files"] == 2
    assert json.loads(only_good["extra"])["fake_bad_files"] == 0
    err = error_of(capsys, argv + ["--fake-dir", str(bad), "--set", "data.max_bad_fraction=0.5", "--num-samples", "4"])
    assert f"--fake-dir {bad} holds 3 usable videos" in err and "--num-samples 3" in err


def test_a_fake_video_that_fails_when_decoded_is_counted(tmp_path, capsys):
    """The first half of an AVI (its header claims 20 frames, 4 decode): whether the data layer finds it bad when
    indexing (left out) or when decoding (its clip replaced, as for real data), the run goes on and counts it."""
    folder = _folder(tmp_path / "fake", False)
    whole = (folder / "g0.avi").read_bytes()
    (folder / "a.avi").write_bytes(whole[: len(whole) // 2])  # sorts first: among the scored files
    board = tmp_path / "lb.csv"
    assert main(["eval", "--metric", "fvd_shapes", "--data", "shapes", "--resolution", "32", "--num-samples", "3",
                 "--num-real", "3", "--fake-dir", str(folder), "--set", "data.max_bad_fraction=0.5",
                 "--leaderboard", str(board)]) == 0
    assert "1 of 4 files could not be read, scored on the good ones (first: a.avi)" in capsys.readouterr().out
    [row] = read_rows(board)
    assert json.loads(row["extra"])["fake_bad_files"] == 1 and row["num_fake"] == "3"
