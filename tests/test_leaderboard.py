"""Leaderboard: concurrent appends lose no row; malformed files are reported and left untouched; rendering."""

import multiprocessing as mp

import pytest

from zoo.errors import ZooError
from zoo.leaderboard import COLUMNS, append_rows, read_rows, render


def _row(i: int, **kw) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(date="2026-01-01T00:00:00+00:00", model=f"m{i}", dataset="ucf101", preset="fvd2048_16f", metric="fvd",
               value=repr(100.0 + i), num_real=2048, num_fake=2048, detector_verified="True", training_steps=i,
               code_version="0.1.0", extra='{"a, b": "quoted,comma"}')
    row.update(kw)
    return row


def _writer(path, worker):
    for i in range(20):
        append_rows(path, [_row(worker * 100 + i)])


def test_concurrent_appends_lose_no_row(tmp_path):
    path = tmp_path / "leaderboard.csv"
    procs = [mp.get_context("spawn").Process(target=_writer, args=(str(path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = read_rows(path)
    assert sorted(r["model"] for r in rows) == sorted(f"m{w * 100 + i}" for w in range(4) for i in range(20))


def test_malformed_file_is_reported_and_untouched(tmp_path):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row(1)])
    with open(path, "a") as f:
        f.write("2026,broken")  # a partial row, no newline
    before = path.read_bytes()
    with pytest.raises(ZooError, match="partial row"):
        append_rows(path, [_row(2)])
    with pytest.raises(ZooError, match="line 3"):
        read_rows(path)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ZooError, match="not a video-zoo leaderboard"):
        append_rows(other, [_row(3)])
    assert path.read_bytes() == before and other.read_text() == "a,b\n1,2\n"


def test_render_marks_comparability_and_paper_numbers(tmp_path):
    rows = [_row(1, model="mocogan", samples="leaderboard_samples/a.gif"), _row(2, model="mocogan", num_fake=256)]
    md = render(rows, "md")
    assert "### ucf101 · fvd" in md and "mocogan (paper)" in md and "2886.9" in md
    assert "same protocol" in md and "preset wants" in md
    page = render(rows, "html")
    assert "<img src='leaderboard_samples/a.gif'" in page
    assert render(rows, "csv").splitlines()[0] == ",".join(COLUMNS)
