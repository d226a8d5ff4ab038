"""Leaderboard: concurrent appends lose no row; malformed files are reported and left untouched; rendering."""

import multiprocessing as mp

import pytest

from zoo.errors import ZooError
from zoo.leaderboard import COLUMNS, append_rows, read_rows, render


def _row(i: int, **kw) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(date="2026-01-01T00:00:00+00:00", model=f"m{i}", dataset="ucf101", preset="fvd2048_16f", metric="fvd",
               value=repr(100.0 + i), num_real=2048, num_fake=2048, detector_verified="True", training_steps=i,
               code_version="0.1.0", extra='{"a, b": "quoted,comma"}',
               protocol='{"detector": {"trust": "verified", "verified": true}, "resolution": 256}')
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


def test_partial_last_row_is_set_aside_and_appends_continue(tmp_path, capsys):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row(1), _row(2)])
    complete = path.read_bytes()
    cut = _format_one(_row(3))[:37]
    with open(path, "a") as f:
        f.write(cut)  # a writer killed mid-append: a partial row, no newline
    assert [r["model"] for r in read_rows(path)] == ["m1", "m2"], "readers skip the partial row"
    assert "partial row" in capsys.readouterr().err
    side = append_rows(path, [_row(4)])
    assert side == tmp_path / "leaderboard.csv.partial" and side.read_text() == cut + "\n"
    assert "moved it to" in capsys.readouterr().err
    assert path.read_bytes().startswith(complete), "complete rows are never rewritten"
    assert [r["model"] for r in read_rows(path)] == ["m1", "m2", "m4"]
    header_cut = tmp_path / "fresh.csv"
    header_cut.write_text(",".join(COLUMNS)[:30])  # killed while writing the header of a new file
    append_rows(header_cut, [_row(5)])
    assert [r["model"] for r in read_rows(header_cut)] == ["m5"]


def _format_one(row: dict) -> str:
    from zoo.leaderboard import _format

    return _format([row])


def test_non_numeric_values_are_one_line_errors_naming_the_line(tmp_path):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row(1), _row(2, value="fast"), _row(3)])
    with pytest.raises(ZooError, match=r"line 3: value is 'fast', not a number") as e:
        read_rows(path)
    assert "\n" not in str(e.value)
    path.unlink()
    append_rows(path, [_row(1, num_fake="2048.5")])
    with pytest.raises(ZooError, match=r"line 2: num_fake is '2048.5', not a non-negative integer"):
        read_rows(path)


def test_rows_that_cannot_be_appended_are_written_beside(tmp_path):
    from zoo.leaderboard import RowsSetAside, append_or_set_aside

    other = tmp_path / "leaderboard.csv"
    other.write_text("a,b\n1,2\n")  # not a leaderboard: appending is refused
    with pytest.raises(RowsSetAside) as e:  # a ZooError: `zoo eval` exits 2 saying where the rows are
        append_or_set_aside(other, [_row(7)])
    message = str(e.value)
    saved = list(tmp_path.glob("leaderboard.unsaved-*.csv"))
    assert len(saved) == 1 and e.value.path == saved[0]
    assert str(saved[0]) in message and "not a video-zoo leaderboard" in message
    assert [r["model"] for r in read_rows(saved[0])] == ["m7"] and other.read_text() == "a,b\n1,2\n"


def test_malformed_file_is_reported_and_untouched(tmp_path):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row(1)])
    with open(path, "a") as f:
        f.write("2026,broken\n")  # a complete line with the wrong number of fields
    before = path.read_bytes()
    with pytest.raises(ZooError, match="line 3 has 2 fields"):
        read_rows(path)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ZooError, match="not a video-zoo leaderboard"):
        append_rows(other, [_row(3)])
    assert path.read_bytes() == before and other.read_text() == "a,b\n1,2\n"


def test_only_rows_with_table_verified_weights_are_comparable():
    import json

    from zoo.leaderboard import comparable

    def protocol(trust):
        return json.dumps({"detector": {"verified": trust == "verified", "trust": trust}})

    assert comparable(_row(1, protocol=protocol("verified"))) == (True, "yes")
    ok, why = comparable(_row(1, detector_verified="pinned locally", protocol=protocol("pinned locally")))
    assert not ok and "pinned locally" in why
    ok, why = comparable(_row(1, protocol=json.dumps({"detector": {"verified": True}})))  # written before trust levels
    assert not ok and "pinned locally" in why
    ok, why = comparable(_row(1, detector_verified="False", num_fake=256, protocol=protocol("unverified")))
    assert not ok and "unverified detector weights" in why and "preset wants" in why, "every reason is given"
    md = render([_row(1, detector_verified="pinned locally", protocol=protocol("pinned locally"))], "md")
    assert "pinned locally" in md and "| yes |" not in md


def test_render_marks_comparability_and_paper_numbers(tmp_path):
    rows = [_row(1, model="mocogan", samples="leaderboard_samples/a.gif"), _row(2, model="mocogan", num_fake=256)]
    md = render(rows, "md")
    assert "### ucf101 · fvd" in md and "mocogan (paper)" in md and "2886.9" in md
    assert "same protocol" in md and "preset wants" in md
    page = render(rows, "html")
    assert "<a href='#samples-1'>" not in page and "not shown: no leaderboard folder given" in page
    assert render(rows, "csv").splitlines()[0] == ",".join(COLUMNS)
