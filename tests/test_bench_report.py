"""The bench report page from what `state.json` says: one ranking rule (ACD: the closer to the real clips' ACD the
better; issue 27.4), real clips beside the samples, every field escaped and images read only from the bench's own
`samples/` folder (issue 28.10)."""

import base64
import io
import json
import re
from pathlib import Path

import numpy as np

from zoo.bench import BenchState, write_report
from zoo.cli import main


def _gif(path: Path, value: int) -> bytes:
    from zoo.video_io import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    frames[1] = value
    write_video(frames, path)
    return path.read_bytes()


def _entry(**kw) -> dict:
    entry = {"steps": 2, "wall_s": 60.0, "curve": [], "frames": 8, "resolution": 16, "params": 1000}
    entry.update(kw)
    return entry


def _final(fvd: float, acd: float, acd_real: float = 1.7) -> dict:
    return {"fvd_shapes": {"fvd": fvd}, "kvd_shapes": {"kvd": 1.0}, "is_shapes": {"is": 2.0},
            "prdc_shapes": {"prdc": 0.1, "precision": 0.1, "recall": 0.1, "density": 0.1, "coverage": 0.1},
            "acd_shapes": {"acd": acd, "acd_real": acd_real}}


def _report(out: Path, state: dict, keys: list[str]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "state.json").write_text(json.dumps(state))
    return write_report(BenchState(out / "state.json"), keys, out).read_text()


def _gifs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"src='data:image/gif;base64,([^']*)'", page)]


def test_report_ranks_acd_by_closeness_to_the_real_clips_not_by_lowness(tmp_path):
    state = {"num_samples": 16, "floor": {}, "models": {
        "lowest_acd": _entry(final=_final(fvd=40.0, acd=0.5)),  # far below the real clips' 1.7
        "real_like": _entry(final=_final(fvd=50.0, acd=1.9))}}
    page = _report(tmp_path / "bench", state, ["real_like", "lowest_acd"])
    assert "acd_shapes<br><small>closer to the real clips&#x27; value (acd_real) is better</small>" in page
    assert "fvd_shapes<br><small>lower is better</small>" in page and "lower is better for FVD, KVD and ACD" not in page
    rows = re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", page)
    assert [name for name, _ in rows] == ["lowest_acd", "real_like"], "rows follow the headline FVD"
    cells = {name: re.findall(r"<td>(.*?)</td>", rest) for name, rest in rows}
    assert cells["lowest_acd"][4].startswith("<b>40.000</b> <small>#1</small>")
    assert cells["real_like"][8].startswith("<b>1.900</b> <small>#1</small>")  # acd: 0.2 from real, not 1.2
    assert cells["lowest_acd"][8].startswith("0.500 <small>#2</small>")


def test_report_shows_real_clips_beside_the_samples_of_each_clip_format(tmp_path):
    from PIL import Image, ImageSequence

    out = tmp_path / "bench"
    real, model, other = _gif(out / "samples" / "real-8x16.gif", 50), _gif(out / "samples" / "m.gif", 150), _gif(
        out / "samples" / "o.gif", 250)
    state = {"num_samples": 16, "models": {"m": _entry(final=_final(1, 1), samples="samples/m.gif"),
                                           "o": _entry(final=_final(1, 1), samples="samples/o.gif", frames=16)},
             "floor": {"8x16": {"values": _final(2, 2), "samples": "samples/real-8x16.gif"}}}
    page = _report(out, state, ["m", "o"])
    assert _gifs(page) == [real, model, other], "each format's real clips first, then its models"
    section = page.split("beside real clips</h2>")[1]
    assert re.findall(r"<h3>([^<]*)</h3>", section) == ["16^2 x 8", "16^2 x 16"]
    first = Image.open(io.BytesIO(_gifs(page)[0]))
    assert [np.array(f.convert("RGB"))[0, 0, 0] for f in ImageSequence.Iterator(first)] == [0, 50]


HOSTILE = "<script>alert(1)</script>"


def test_report_escapes_every_field_and_embeds_no_file_from_outside_its_samples_folder(tmp_path):
    out = tmp_path / "bench"
    secret = _gif(tmp_path / "secret.gif", 77)  # a real GIF outside the bench directory
    own = _gif(out / "samples" / "own.gif", 200)
    (out / "samples" / "link.gif").symlink_to(tmp_path / "secret.gif")
    (out / "samples" / "notes.gif").write_text("not an image")
    hostile_final = {"fvd_shapes": {"fvd": HOSTILE, "interval": ["<b>bold</b>", 2.0]},
                     "acd_shapes": {"acd": 1.0, "acd_real": "<i>x</i>"}, "prdc_shapes": {"prdc": "<u>", "recall": {}}}
    state = {"num_samples": HOSTILE, "models": {
        "m1": _entry(frames=HOSTILE, params="<img src=x onerror=alert(2)>", final=hostile_final,
                     samples=str(tmp_path / "secret.gif"), curve=[{"step": HOSTILE, "fvd_shapes": 1.0}]),
        "m2": _entry(samples="samples/../../secret.gif", final=[HOSTILE]),
        "m3": _entry(samples="samples/link.gif", steps=3, final={"fvd_shapes": HOSTILE}),
        "m4": _entry(samples="samples/notes.gif"),
        "m5": _entry(samples="samples/own.gif"),
        "m6": {"steps": HOSTILE, "curve": HOSTILE, "samples": str(tmp_path / "secret.gif")}},  # malformed: ignored
        "floor": {f"{HOSTILE}x16": {"values": hostile_final, "samples": "/etc/passwd"},
                  "8x16": {"values": HOSTILE, "samples": ["<script>"]}}}
    page = _report(out, state, ["m1", "m2", "m3", "m4", "m5", "m6"])
    assert not re.search(r"<(script|b>|i>|u>|img src=x)", page, re.IGNORECASE), "every field is escaped"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert _gifs(page) == [own]
    assert base64.b64encode(secret).decode() not in page
    if Path("/etc/passwd").is_file():
        assert base64.b64encode(Path("/etc/passwd").read_bytes()[:48]).decode() not in page
    reasons = re.findall(r"not shown \(([^)]*)\)", page)
    assert sorted(reasons) == sorted([f"outside {out / 'samples'}"] * 4 + ["not a GIF or PNG image"])


def test_a_state_file_that_is_not_a_bench_state_is_one_line(tmp_path, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    for text in ("{not json", '["a list"]', '{"models": []}', "\udcff"):
        (out / "state.json").write_text(text, errors="surrogateescape")
        assert main(["bench", "--models", "pixelcnn", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{out / 'state.json'} is not a bench state" in err
    (tmp_path / "file").write_text("x")
    assert main(["bench", "--models", "pixelcnn", "--out", str(tmp_path / "file")]) == 2
    assert "is a file; the bench needs a folder" in capsys.readouterr().err


def test_conditional_models_get_their_own_table_ranked_by_their_own_rules(tmp_path):
    """Translations of held-out conditions are not samples: their rows leave the main table for one of their own,
    where each column ranks by its rule (PSNR higher, warping error lower)."""
    def translated(psnr: float, warp: float) -> dict:
        return {"fvd_shapes_heldout": {"fvd": 30.0}, "kvd_shapes_heldout": {"kvd": 1.0},
                "prdc_shapes_heldout": {"prdc": 0.5}, "psnr": {"psnr": psnr}, "ssim": {"ssim": 0.5},
                "warp_error": {"warp_error": warp}, "mask_iou": {"mask_iou": 0.8}}

    state = {"num_samples": 16, "floor": {}, "models": {
        "mocogan": _entry(final=_final(fvd=40.0, acd=1.7)),
        "sharp": _entry(final=translated(psnr=25.0, warp=0.004), conditional=True),
        "steady": _entry(final=translated(psnr=20.0, warp=0.001), conditional=True)}}
    page = _report(tmp_path / "bench", state, ["mocogan", "sharp", "steady"])
    main_table = page.split("<table id=\"metrics\">")[1].split("</table>")[0]
    conditional = page.split("<table id='conditional'>")[1].split("</table>")[0]
    assert "mocogan" in main_table and "sharp" not in main_table and "steady" not in main_table
    rows = {row.split("</td>")[0].split("<td>")[1]: row for row in conditional.split("<tr>")[2:]}
    assert "<b>25.000</b> <small>#1</small>" in rows["sharp"] and "20.000 <small>#2</small>" in rows["steady"]
    assert "<b>0.001</b> <small>#1</small>" in rows["steady"] and "0.004 <small>#2</small>" in rows["sharp"]
    assert _report(tmp_path / "plain", {"num_samples": 16, "floor": {}, "models": {
        "mocogan": _entry(final=_final(fvd=40.0, acd=1.7))}}, ["mocogan"]).count("id='conditional'") == 0
