"""The leaderboard's write and read paths byte for byte and message for message (issue 19: mutation survivors).

Expected file contents are CSV lines written out here by hand, and expected errors are the full one-line messages,
so a changed line terminator, placeholder, header check, side-file condition or line number fails.
"""

import os
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from zoo.errors import ZooError
from zoo.leaderboard import COLUMNS, RowsSetAside, append_or_set_aside, append_rows, read_rows

HEADER = ",".join(COLUMNS) + "\n"


def _row(model: str, **kw) -> dict:
    """Only some columns: the others must be written empty."""
    row = {"model": model, "metric": "fvd", "value": "12.5", "num_real": "2", "num_fake": "3"}
    row.update(kw)
    return row


def _line(model: str, value: str = "12.5", extra: str = "") -> str:
    """The CSV line of `_row(model)`, by hand: 24 fields, empty except model (2nd), metric (7th), value (8th),
    num_real / num_fake (11th, 12th) and extra (23rd)."""
    fields = [""] * 24
    fields[1], fields[6], fields[7], fields[10], fields[11], fields[22] = model, "fvd", value, "2", "3", extra
    return ",".join(fields) + "\n"


def test_appends_write_the_header_once_and_rows_with_newline_endings(tmp_path, capsys):
    path = tmp_path / "new" / "folder" / "leaderboard.csv"  # parents are created
    assert append_rows(path, [_row("a", extra='{"a, b": 1}')]) is None
    assert append_rows(path, [_row("b")]) is None
    expected = HEADER + _line("a", extra='"{""a, b"": 1}"') + _line("b")
    assert path.read_bytes() == expected.encode()
    assert not (path.parent / "leaderboard.csv.partial").exists(), "a file ending cleanly has nothing to set aside"
    assert [r["model"] for r in read_rows(path)] == ["a", "b"]
    assert capsys.readouterr().err == "", "a clean file is read without a partial-row note"


def test_an_empty_file_gets_the_header_and_nothing_set_aside(tmp_path):
    path = tmp_path / "leaderboard.csv"
    path.write_bytes(b"")
    assert append_rows(path, [_row("a")]) is None
    assert path.read_bytes() == (HEADER + _line("a")).encode()
    assert not (tmp_path / "leaderboard.csv.partial").exists()


def test_a_file_that_is_one_empty_line_is_not_a_leaderboard(tmp_path):
    path = tmp_path / "leaderboard.csv"
    path.write_bytes(b"\n")
    with pytest.raises(ZooError, match=re.escape(f"{path} is not a video-zoo leaderboard (line 1 is '')")):
        append_rows(path, [_row("a")])
    assert path.read_bytes() == b"\n"


def test_header_errors_quote_60_characters_of_line_1_and_survive_bad_bytes(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a" * 100 + "\nx\n")
    message = (f"{path} is not a video-zoo leaderboard (line 1 is {'a' * 60!r}); it was left untouched; "
               "move it aside or pass --leaderboard OTHER.csv")
    for call in (lambda: append_rows(path, [_row("a")]), lambda: read_rows(path)):
        with pytest.raises(ZooError) as e:
            call()
        assert str(e.value) == message
    path.write_bytes(b"\xff\xfeab\n")  # not UTF-8: still a one-line refusal, not a UnicodeDecodeError
    with pytest.raises(ZooError) as e:
        append_rows(path, [_row("a")])
    assert str(e.value).startswith(f"{path} is not a video-zoo leaderboard (line 1 is '\ufffd\ufffdab')")
    assert path.read_bytes() == b"\xff\xfeab\n"


def test_read_rows_messages_name_the_file_and_the_right_line(tmp_path, capsys):
    path = tmp_path / "leaderboard.csv"
    with pytest.raises(ZooError) as e:
        read_rows(path)
    assert str(e.value) == f"leaderboard {path} does not exist; `zoo eval` creates it"
    path.write_bytes(b"")
    with pytest.raises(ZooError) as e:
        read_rows(path)
    assert str(e.value).startswith(f"{path} is not a video-zoo leaderboard (line 1 is ''); it was left untouched")
    path.write_bytes((HEADER + _line("a")).encode() + b"b\xff,c\n")
    with pytest.raises(ZooError) as e:
        read_rows(path)
    assert str(e.value) == f"{path} line 3 is not UTF-8 text; the file was left untouched"
    path.write_text(HEADER + _line("a") + _line("b") + ",partial")
    assert [r["model"] for r in read_rows(path)] == ["a", "b"]
    assert capsys.readouterr().err == (f"zoo: {path} line 4 is a partial row (an interrupted write); ignored\n")
    path.write_text(HEADER + _line("a") + "x,y\n")
    with pytest.raises(ZooError) as e:
        read_rows(path)
    assert str(e.value) == f"{path} line 3 has 2 fields, expected 24; the file was left untouched"


@pytest.mark.parametrize("column,text,kind", [
    ("value", "", "a number"),  # the value itself may not be empty (the interval columns may)
    ("num_real", "-1", "a non-negative integer"),
    ("interval_low", "x" * 50, "a number"),
])
def test_number_checks_refuse_with_the_full_message(tmp_path, column, text, kind):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row("a"), _row("b", **{column: text})])
    with pytest.raises(ZooError) as e:
        read_rows(path)
    assert str(e.value) == (f"{path} line 3: {column} is {text[:40]!r}, not {kind}; fix or remove that line "
                            "(the file was left untouched)")


def test_number_checks_accept_negative_values_and_zero_counts(tmp_path):
    path = tmp_path / "leaderboard.csv"
    append_rows(path, [_row("kvd", value="-0.25", interval_low="-1e-3", num_real="0", num_fake="0")])
    (row,) = read_rows(path)
    assert (row["value"], row["interval_low"], row["num_real"], row["num_fake"]) == ("-0.25", "-1e-3", "0", "0")


def test_append_or_set_aside_appends_when_it_can(tmp_path):
    path = tmp_path / "leaderboard.csv"
    assert append_or_set_aside(path, [_row("a"), _row("b")]) == f"appended 2 row(s) to {path}"
    assert path.read_bytes() == (HEADER + _line("a") + _line("b")).encode()


@pytest.fixture()
def tokyo_time(monkeypatch):
    """Local time 9 hours off UTC, so a stamp taken in local time differs from the UTC one."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_unsaved_rows_go_to_a_utc_stamped_file_in_the_working_folder_when_beside_fails(tmp_path, tokyo_time):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    path = blocker / "leaderboard.csv"  # neither appendable nor a folder to write beside
    before = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    with pytest.raises(RowsSetAside) as e:
        append_or_set_aside(path, [_row("a")])
    message = str(e.value)
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    (saved,) = list(os.scandir(os.getcwd()))
    match = re.fullmatch(rf"leaderboard\.unsaved-(\d{{8}}T\d{{6}})-{os.getpid()}\.csv", saved.name)
    assert match, saved.name
    assert before <= datetime.strptime(match.group(1), "%Y%m%dT%H%M%S") <= after, "the stamp is UTC"
    assert message.startswith(f"could not append to {path} (") and message.endswith(
        f"); the 1 row(s) were written to {os.path.join(os.getcwd(), saved.name)}: append them by hand once the "
        "leaderboard is fixed")
    assert open(saved.path, "rb").read() == (HEADER + _line("a")).encode()


def test_rows_that_cannot_be_written_anywhere_are_one_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    path = blocker / "leaderboard.csv"
    now = datetime.now(timezone.utc)
    for s in range(-2, 120):  # every name the next two minutes can give already exists in the working folder
        stamp = (now + timedelta(seconds=s)).strftime("%Y%m%dT%H%M%S")
        open(f"leaderboard.unsaved-{stamp}-{os.getpid()}.csv", "w").close()
    with pytest.raises(ZooError) as e:
        append_or_set_aside(path, [_row("a")])
    assert re.fullmatch(rf"could not append to {re.escape(str(path))} \(.+\) nor write the rows beside it; the "
                        "results are printed above", str(e.value)), str(e.value)
