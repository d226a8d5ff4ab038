"""`zoo data check`'s exit status (issue 27, item 5)."""

from tests.datasets.media import write
from zoo.cli import main


def _check(root, cache, *extra) -> int:
    return main(["data", "check", "--data", "folder", "--data-root", str(root), "--frames", "8",
                 "--set", f"data.index_cache={cache}", *extra])


def test_data_check_exits_0_on_a_clean_copy_and_1_when_any_file_is_bad(video_tree, cache, capsys):
    assert _check(video_tree, cache) == 0
    assert "usable 4" in capsys.readouterr().out
    (video_tree / "run" / "zero.mp4").write_bytes(b"")
    assert _check(video_tree, cache) == 1
    out = capsys.readouterr().out
    assert "run/zero.mp4: unreadable" in out and "unreadable 1" in out and "1 bad file(s): exit status 1" in out


def test_data_check_decode_exits_1_for_a_file_that_fails_only_when_decoded(video_tree, cache, capsys):
    data = write(video_tree / "walk" / "cut.avi", n=60).read_bytes()
    (video_tree / "walk" / "cut.avi").write_bytes(data[: len(data) // 3])  # headers fine, the last frames gone
    assert _check(video_tree, cache) == 0, "the index alone sees nothing wrong"
    capsys.readouterr()
    assert _check(video_tree, cache, "--decode") == 1
    assert "walk/cut.avi: undecodable" in capsys.readouterr().out


def test_data_check_exits_2_with_one_line_when_the_copy_cannot_be_checked(tmp_path, cache, capsys):
    assert _check(tmp_path / "nowhere", cache) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset root" in err and "does not exist" in err
