"""`zoo bench`: trains, scores with the shapes metrics, resumes, and writes a report a real browser renders."""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.errors import ZooError

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="no /usr/bin/chromium (apt-get install -y chromium; .ci/run installs it)"
)


def bench(out: Path, *extra: str) -> int:
    return main(["bench", "--models", "mocogan", "--experiment", "tiny", "--num-samples", "12", "--bootstrap", "5",
                 "--out", str(out), *extra])


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """One tiny bench: mocogan (tiny.yaml), 1 step, then extended to 2 steps by a second call (the resume)."""
    out = tmp_path_factory.mktemp("bench")
    assert bench(out, "--max-steps", "1", "--eval-every", "1") == 0
    first = json.loads((out / "state.json").read_text())
    assert bench(out, "--max-steps", "2", "--eval-every", "1") == 0
    return out, first


def test_bench_scores_every_shapes_metric_with_intervals_and_provenance(bench_dir):
    from zoo.leaderboard import FLOOR_MODEL, comparable, detector_trust
    from zoo.metrics.detectors.weights import WEIGHTS
    from zoo.metrics.presets import SHAPES_PRESETS

    out, _ = bench_dir
    state = json.loads((out / "state.json").read_text())
    entry = state["models"]["mocogan"]
    assert entry["steps"] == 2 and entry["params"] > 0 and entry["wall_s"] > 0
    assert [p["step"] for p in entry["curve"]] == [1, 2]
    for name in ("fvd_shapes", "kvd_shapes", "prdc_shapes", "is_shapes", "acd_shapes"):
        low, high = entry["final"][name]["interval"]
        assert low <= high
    every = list(csv.DictReader((out / "leaderboard.csv").open()))
    floor = [r for r in every if r["model"] == FLOOR_MODEL]  # the real-vs-real rows, so the leaderboard shows them
    assert [r["preset"] for r in floor] == list(SHAPES_PRESETS) and {r["num_real"] for r in floor} == {"12"}
    assert {float(r["value"]) for r in floor} == {state["floor"]["8x32"]["values"][r["preset"]][r["metric"]]
                                                  for r in floor}
    rows = [r for r in every if r["model"] != FLOOR_MODEL]
    assert {r["preset"] for r in rows} == {"fvd_shapes", "kvd_shapes", "prdc_shapes", "is_shapes", "acd_shapes"}
    assert all(r["model"] == "mocogan" and r["training_steps"] in ("1", "2") for r in rows)
    assert {r["detector_sha256"] for r in rows} == {WEIGHTS["shapes_net"].sha256}
    # the shipped weights match the table's checksum, so only the bench's small sample counts keep rows incomparable
    assert {detector_trust(r) for r in rows} == {"verified"}
    assert all(comparable(r)[1].startswith("sample counts") for r in rows)
    assert all(r["checkpoint_sha256"] and r["config_hash"] and r["interval_low"] for r in rows)


def test_second_call_continues_instead_of_starting_over(bench_dir, capsys):
    out, first = bench_dir
    assert first["models"]["mocogan"]["steps"] == 1
    ckpts = sorted(p.name for p in (out / "runs" / "mocogan" / "checkpoints").glob("step=*.ckpt"))
    assert ckpts == ["step=0000001.ckpt", "step=0000002.ckpt"]  # step 1 kept, step 2 trained on top of it
    state = json.loads((out / "state.json").read_text())
    assert state["models"]["mocogan"]["curve"][0] == first["models"]["mocogan"]["curve"][0]  # not recomputed
    capsys.readouterr()
    assert bench(out, "--max-steps", "2", "--eval-every", "1") == 0  # a third call: nothing left to do
    assert "mocogan: done earlier (2 steps), skipped" in capsys.readouterr().out
    assert json.loads((out / "state.json").read_text())["models"]["mocogan"]["curve"] == state["models"]["mocogan"][
        "curve"]


def test_bench_rejects_unknown_model_and_other_data(tmp_path, capsys):
    assert main(["bench", "--models", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["bench", "--data", "ucf101", "--out", str(tmp_path)]) == 2
    assert "shapes only" in capsys.readouterr().err


def test_plan_puts_first_stages_first():
    from zoo.bench import plan

    assert plan(["videogpt", "mocogan"]) == ["videogpt_vqvae", "videogpt", "mocogan"]
    order = plan(["all"])
    assert order.index("videogpt_vqvae") < order.index("videogpt")
    assert "dvg" not in order and "vid2vid" in order, "prediction-only models are left out; conditional ones benched"
    with pytest.raises(ZooError, match=r"^dvg only continues observed frames .* `zoo eval --task predict`$"):
        plan(["dvg"])



def test_models_are_scored_on_clips_the_detector_accepts():
    """Pixel models train on 4 frames and StyleGAN-V on 3 sparse frames; both are scored on clips they generate at
    the detector's minimum of 8 frames or their own sample length, not on the training clip length; a model trained on
    16-frame clips (the VQ-VAE) is scored on 16, one trained on 8 (video diffusion, MoCoGAN) on 8."""
    from zoo.bench import BenchRequest, BenchState, _config, eval_frames
    from zoo.registry import load_all

    load_all()
    request = BenchRequest(models=["all"])
    state = BenchState(Path("unused"))
    expected = {"pixelcnn": 8, "stylegan_v": 16, "videogpt_vqvae": 16, "mocogan": 8, "video_diffusion": 8}
    frames = {key: eval_frames(_config(request, key, state, Path("unused"))[0]) for key in expected}
    assert frames == expected


# -- the report page in a real browser ---------------------------------------------------------------------------

PROBE = ("<script>addEventListener('load', () => { document.body.dataset.images = [...document.images]"
         ".map(i => i.complete && i.naturalWidth > 0 ? 1 : 0).join(''); });</script>")


def render_in_chromium(page: Path, tmp_path: Path, probe: bool = False) -> tuple[str, list[str]]:
    """Load `page` in headless Chromium with a fresh profile: (DOM after load, console messages). `probe`: load a
    copy that records in `<body data-images>` which images decoded (1) and which did not (0)."""
    if probe:
        page = probed_copy(page, tmp_path)
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def probed_copy(report: Path, tmp_path: Path) -> Path:
    page = tmp_path / "probed.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    return page


@needs_chromium
def test_console_check_catches_a_broken_page(tmp_path):
    """The check the report test relies on: a page with a script error is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    _, console = render_in_chromium(page, tmp_path)
    assert any("notDefined" in line for line in console)


@needs_chromium
def test_report_renders_in_chromium_without_console_errors(bench_dir, tmp_path):
    out, _ = bench_dir
    dom, console = render_in_chromium(out / "report.html", tmp_path, probe=True)
    assert console == []
    images = re.search(r'data-images="([01]*)"', dom)
    assert images and images.group(1) == "111", dom[:500]  # the curves plot, the real clips and the mocogan GIF
    assert re.search(r"<td>mocogan</td>", dom) and "real vs real (floor)" in dom
    assert len(re.findall(r"<tr", dom)) >= 3  # header, model, floor
    shot = tmp_path / "shot.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}", "--window-size=1400,900",
           (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    assert pixels.getextrema()[0] < 100 < pixels.getextrema()[1]  # text and plots, not a blank page


def test_report_is_self_contained(bench_dir, tmp_path):
    out, _ = bench_dir
    text = (out / "report.html").read_text()
    assert "data:image/gif;base64," in text and "data:image/png;base64," in text
    moved = tmp_path / "elsewhere.html"
    shutil.copy(out / "report.html", moved)  # no relative links: the page works wherever it is copied
    assert not re.search(r'src="(?!data:)', text)


def test_zoo_eval_takes_the_shapes_presets(bench_dir, capsys):
    out, _ = bench_dir
    ckpt = out / "runs" / "mocogan" / "checkpoints" / "last.ckpt"
    args = ["eval", "--ckpt", str(ckpt), "--num-samples", "12", "--num-real", "12", "--no-leaderboard"]
    for name in ("fvd_shapes", "prdc_shapes", "acd_shapes"):
        args += ["--metric", name]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert all(line in printed for line in ("fvd_shapes", "precision =", "acd_real ="))


def test_report_shows_the_real_clips_the_floor_scored_beside_the_samples(bench_dir):
    """The grid of real clips is the floor's first real set (data seed 0) at the bench's clip format, so a person
    compares the samples with what the metrics compare them to."""
    import base64
    import io

    import numpy as np
    from PIL import Image, ImageSequence

    from zoo.bench import BenchRequest, real_clips
    from zoo.video_io import from_uint8, make_grid

    out, _ = bench_dir
    page = (out / "report.html").read_text()
    grid = re.search(r"<img class='samples real' alt='real clips' src='data:image/gif;base64,([^']*)'", page)
    frames = np.stack([np.array(f.convert("RGB")) for f in ImageSequence.Iterator(
        Image.open(io.BytesIO(base64.b64decode(grid.group(1)))))])

    def distance(seed):  # mean absolute pixel difference to the grid of the real clips of data seed `seed`
        grid = make_grid(from_uint8(real_clips(BenchRequest(num_samples=12), 8, 32, seed)))
        return np.abs(frames.astype(float) - grid).mean()

    # GIF's 256-colour palette rounds the ~1000 colours of each frame a little; another real set is far off
    assert distance(0) < 2 and distance(1) > 5 * distance(0), (distance(0), distance(1))
    samples = page.split("beside real clips</h2>")[1]
    assert samples.index("alt='real clips'") < samples.index("alt='mocogan'")
