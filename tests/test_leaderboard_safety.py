"""The rendered leaderboard: self-contained pages that embed only their own sample GIFs, escaped fields, the one rule
of which values are better, long fields, `--out` that never overwrites silently, and `zoo eval`'s exit status when
its rows could not be appended (issues 27.3, 28.10-28.12)."""

import base64
import html
import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_bench import needs_chromium, render_in_chromium
from zoo.cli import main
from zoo.errors import ZooError
from zoo.leaderboard import COLUMNS, FIELD_LIMIT, FLOOR_MODEL, append_rows, read_rows, render


def _row(model: str, **kw) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(date="2026-01-01T00:00:00+00:00", model=model, dataset="shapes", preset="acd_shapes", metric="acd",
               value="1.0", num_real=16, num_fake=16, detector_verified="True", training_steps=2,
               code_version="0.1.0", extra="{}", protocol='{"detector": {"trust": "verified"}}')
    row.update(kw)
    return row


def _gif(path: Path, value: int = 200) -> bytes:
    from zoo.video_io import write_video

    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    frames[1] = value
    write_video(frames, path)
    return path.read_bytes()


def _embedded(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"src='data:image/(?:gif|png);base64,([^']*)'", page)]


def test_html_page_embeds_its_samples_and_shows_them_wherever_it_is_written(tmp_path, capsys):
    board = tmp_path / "board"
    gif = _gif(board / "leaderboard_samples" / "m-1.gif")
    append_rows(board / "leaderboard.csv", [_row("m", samples="leaderboard_samples/m-1.gif"),
                                            _row("m", metric="fvd", preset="fvd_shapes",
                                                 samples="leaderboard_samples/m-1.gif")])
    page = tmp_path / "elsewhere" / "page.html"
    page.parent.mkdir()
    assert main(["leaderboard", "--file", str(board / "leaderboard.csv"), "--format", "html", "--out",
                 str(page)]) == 0
    text = page.read_text()
    assert _embedded(text) == [gif], "embedded once, for both rows that name it"
    assert text.count("href='#samples-1'") == 2 and "leaderboard_samples/m-1.gif" not in re.sub(
        r"<figcaption>.*?</figcaption>", "", text)  # no relative link left: only the caption names the file
    assert main(["leaderboard", "--file", str(board / "leaderboard.csv"), "--format", "html"]) == 0
    assert _embedded(capsys.readouterr().out) == [gif], "the page printed to stdout is the same page"


@needs_chromium
def test_html_page_written_elsewhere_shows_its_samples_in_chromium(tmp_path):
    board = tmp_path / "board"
    _gif(board / "leaderboard_samples" / "m-1.gif")
    append_rows(board / "leaderboard.csv", [_row("m", samples="leaderboard_samples/m-1.gif")])
    page = tmp_path / "page.html"
    page.write_text(render(read_rows(board / "leaderboard.csv"), "html", base=board))
    dom, console = render_in_chromium(page, tmp_path, probe=True)
    assert console == [] and re.search(r'data-images="1"', dom), dom[:400]


def test_html_page_never_reads_files_outside_its_samples_folder(tmp_path):
    board = tmp_path / "board"
    samples = board / "leaderboard_samples"
    secret = _gif(tmp_path / "secret.gif", value=77)  # a real GIF, but outside the samples folder
    own = _gif(samples / "own.gif")
    (samples / "link.gif").symlink_to(tmp_path / "secret.gif")
    (samples / "notes.gif").write_text("not an image")
    (samples / "big.gif").write_bytes(b"GIF89a" + bytes(8 * 2**20))
    names = ["../secret.gif", str(tmp_path / "secret.gif"), "leaderboard_samples/../../secret.gif",
             "leaderboard_samples/link.gif", "leaderboard_samples/notes.gif", "leaderboard_samples/big.gif",
             "leaderboard_samples/missing.gif", "leaderboard_samples/own.gif"]
    page = render([_row(f"m{i}", samples=name) for i, name in enumerate(names)], "html", base=board)
    assert _embedded(page) == [own]
    assert base64.b64encode(secret).decode() not in page
    reasons = re.findall(r"not shown: ([^<]*)<", page)
    assert reasons == [f"outside {samples}"] * 4 + ["not a GIF or PNG image", "larger than 8 MiB",
                                                     "no such file"]


HOSTILE = "<script>alert(1)</script> [click](javascript:alert(2)) ![x](http://e/x.png) a|b\nnext"


def test_html_escapes_every_field(tmp_path):
    rows = [_row(HOSTILE, dataset="<b>d</b>", preset="<i>p</i>", code_version="<img src=x onerror=alert(3)>",
                 samples="<script>")]
    page = render(rows, "html", base=tmp_path)
    assert "<script>" not in page and "<b>" not in page and "<img src=x" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_markdown_escapes_html_links_and_cell_breaks():
    md = render([_row(HOSTILE, dataset="<b>d</b>")], "md")
    assert "<" not in md and "](" not in md.replace("\\](", "")  # no tags, no link or image syntax
    assert "&lt;script&gt;" in md and "\\[click\\]" in md
    line = next(r for r in md.splitlines() if "alert(1)" in r)
    cells = re.split(r"(?<!\\)\|", line)[1:-1]  # unescaped pipes separate cells
    assert len(cells) == 8 and "a\\|b next" in cells[0], "the pipe and the newline stay inside the model cell"


def test_tables_say_which_values_are_better_and_rank_by_it():
    """ACD: the closer to the real clips' ACD the better (not the lower); FVD: lower; coverage: higher. The floor
    rows (real vs real) follow the zoo's rows, the papers' numbers come last."""
    real = '{"acd_real": 1.7}'
    acd = [_row("far_low", value="0.5", extra=real), _row("near", value="1.9", extra=real),
           _row("far_high", value="2.6", extra=real), _row("unknown", value="1.7"),
           _row(FLOOR_MODEL, value="1.6", extra=real)]
    fvd = [_row(m, metric="fvd", preset="fvd_shapes", value=v) for m, v in (("b", "30"), ("a", "10"), ("c", "nan"))]
    prdc = [_row(m, metric="prdc", preset="prdc_shapes", value=v) for m, v in (("low", "0.1"), ("high", "0.9"))]
    page = render(acd + fvd + prdc, "html")
    sections = {m: html.unescape(t) for m, t in re.findall(r"<h3>shapes · (\w+)</h3><p>([^<]*)</p>", page)}
    order_note = ("the zoo's rows best first per protocol and resolution, then the real-vs-real floor (where "
                  "measured), then the papers'.")
    assert sections == {"acd": f"Closer to the real clips' value (acd_real) is better; {order_note}",
                        "fvd": f"Lower is better; {order_note}", "prdc": f"Higher is better; {order_note}"}

    def order(metric):
        table = page.split(f"<h3>shapes · {metric}</h3>")[1].split("</table>")[0]
        return re.findall(r"<tr[^>]*><td>([^<]*)</td>", table)

    assert order("acd") == ["near", "far_high", "far_low", "unknown", "real vs real (floor)"]
    assert order("fvd") == ["a", "b", "c"] and order("prdc") == ["high", "low"]
    assert "<td>1.9 (real 1.7)</td>" in page and "<tr class='floor no'><td>real vs real (floor)" in page
    md = render(acd, "md")
    assert md.index("| near |") < md.index("| far_low |") < md.index("| real vs real (floor) |")


def test_a_field_over_the_csv_limit_is_refused_on_write_and_one_line_on_read(tmp_path, capsys):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row("ok")])
    before = path.read_bytes()
    with pytest.raises(ZooError, match=rf"column extra of model 'long' holds {FIELD_LIMIT + 1} characters"):
        append_rows(path, [_row("long", extra="x" * (FIELD_LIMIT + 1))])
    assert path.read_bytes() == before, "nothing was written"
    with open(path, "a") as f:  # written by hand (or another tool): 200 KiB in one field
        f.write(",".join(["", "huge"] + ["y" * 200_000] + [""] * (len(COLUMNS) - 3)) + "\n")
    assert main(["leaderboard", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 3 is not a readable CSV row (field larger than field limit" in err


def test_out_never_overwrites_silently(tmp_path, capsys):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row("m")])
    out = tmp_path / "page.md"
    out.write_text("keep me")
    assert main(["leaderboard", "--file", str(path), "--out", str(out)]) == 2
    refused = f"zoo leaderboard: error: --out {out} already exists; pass --force to replace it\n"
    assert capsys.readouterr().err == refused
    assert out.read_text() == "keep me"
    assert main(["leaderboard", "--file", str(path), "--out", str(out), "--force"]) == 0
    assert "| m |" in out.read_text()
    assert main(["leaderboard", "--file", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {tmp_path} is a folder; name a file in it" in err
    assert main(["leaderboard", "--file", str(path), "--format", "csv", "--out", str(path), "--force"]) == 2
    assert "is the leaderboard being rendered" in capsys.readouterr().err and read_rows(path)[0]["model"] == "m"
    assert main(["leaderboard", "--file", str(path), "--out", str(tmp_path / "no" / "page.md")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leaderboard.csv", "leaderboard.csv.lock", "page.md"]


@pytest.mark.parametrize("devices", [1, 2])
def test_zoo_eval_exits_non_zero_when_its_rows_were_set_aside(tmp_path, capfd, devices):
    # under DDP the set-aside happens in rank 0's spawned process: the same one line, never its traceback
    clips = tmp_path / "clips"
    assert main(["data", "synth", "--out", str(clips), "--num", "10", "--frames", "16", "--resolution", "16"]) == 0
    board = tmp_path / "leaderboard.csv"
    board.write_text("a,b\n1,2\n")  # not a leaderboard: the append is refused
    capfd.readouterr()
    code = main(["eval", "--fake-dir", str(clips), "--real-dir", str(clips), "--metric", "fvd_shapes",
                 "--num-samples", "10", "--num-real", "10", "--leaderboard", str(board), "--devices", str(devices)])
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out
    err = printed.err.strip().splitlines()[-1]
    (saved,) = tmp_path.glob("leaderboard.unsaved-*.csv")
    assert code == 2 and err.startswith("zoo eval: error: could not append to") and str(saved) in err
    assert [r["preset"] for r in read_rows(saved)] == ["fvd_shapes"] and board.read_text() == "a,b\n1,2\n"
