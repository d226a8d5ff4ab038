"""`zoo data check`'s exit status, and what a root that holds none of the listed files says (issue 27, items 5, 8)."""

import shutil

import pytest

from tests.datasets.media import write
from tests.datasets.test_ucf101 import _fake_ucf
from zoo.cli import main
from zoo.datasets import build_dataset
from zoo.datasets.kinetics import clip_stem, read_annotations
from zoo.errors import ZooError


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


def test_data_check_lists_every_bad_file_even_when_none_is_usable(video_tree, cache, capsys):
    for path in video_tree.rglob("*.*"):
        path.write_bytes(b"not a video")
    assert _check(video_tree, cache) == 1
    out = capsys.readouterr().out
    assert all(f"{name}: unreadable" in out for name in ("walk/a.avi", "walk/b.mp4", "run/c.avi", "run/d.mp4"))
    assert "unreadable 4, too_large 0, too_short 0, usable 0" in out and "4 bad file(s): exit status 1" in out


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


@pytest.fixture
def ucf_parent(tmp_path):
    """`X/UCF-101/<Class>/...avi` with the split lists beside it in `X/ucfTrainTestlist`, as the two downloads
    unpack side by side; returns X, the folder one level above the dataset root."""
    _fake_ucf(tmp_path / "UCF-101")
    shutil.move(tmp_path / "UCF-101" / "ucfTrainTestlist", tmp_path / "ucfTrainTestlist")
    return tmp_path


def test_a_root_one_level_above_ucf101_names_the_folder_that_matches(ucf_parent, cache):
    for tolerance in (0.01, 1.0):  # the advice of old (max_bad_fraction=1.0) changes nothing
        with pytest.raises(ZooError) as e:
            build_dataset("ucf101", root=str(ucf_parent), split="all", frames=8, index_cache=cache,
                          max_bad_fraction=tolerance)
        message = str(e.value)
        assert message.startswith(f"none of the 6 listed ucf101 videos is under {ucf_parent} (looked for "
                                  f"{ucf_parent / 'ApplyEyeMakeup' / 'v_ApplyEyeMakeup_g01_c01.avi'}, ...). "
                                  "ucf101 expects <root>/<Class>/v_<Class>_gXX_cYY.avi")
        assert message.endswith(f" Did you mean --data-root {ucf_parent / 'UCF-101'}?")
        assert "max_bad_fraction" not in message and "\n" not in message
    d = build_dataset("ucf101", root=str(ucf_parent / "UCF-101"), split="all", frames=8, index_cache=cache)
    assert d.counts["usable"] == 6, "the suggested root works as it stands (lists found beside it)"


def test_a_root_whose_split_lists_are_elsewhere_suggests_them_too(ucf_parent, cache):
    deeper = ucf_parent / "copy"
    deeper.mkdir()
    shutil.move(ucf_parent / "UCF-101", deeper / "UCF-101")  # lists at X/ucfTrainTestlist, videos at X/copy/UCF-101
    with pytest.raises(ZooError) as e:
        build_dataset("ucf101", root=str(ucf_parent), split="all", frames=8, index_cache=cache)
    suggestion = f"--data-root {deeper / 'UCF-101'} --set data.split_dir={ucf_parent / 'ucfTrainTestlist'}"
    assert str(e.value).endswith(f" Did you mean {suggestion}?")
    d = build_dataset("ucf101", root=str(deeper / "UCF-101"), split_dir=str(ucf_parent / "ucfTrainTestlist"),
                      split="all", frames=8, index_cache=cache)
    assert d.counts["usable"] == 6


def test_a_root_above_lists_inside_the_dataset_folder_suggests_that_folder(tmp_path, cache):
    _fake_ucf(tmp_path / "UCF-101")  # lists in X/UCF-101/ucfTrainTestlist: from X, no lists in or beside the root
    with pytest.raises(ZooError, match=r"no UCF-101 split lists .*Did you mean --data-root "
                                       f"{tmp_path / 'UCF-101'}\\?$"):
        build_dataset("ucf101", root=str(tmp_path), split="all", frames=8, index_cache=cache)


def test_a_root_that_matches_nothing_says_where_it_looked_without_a_guess(ucf_parent, cache):
    shutil.rmtree(ucf_parent / "UCF-101")
    with pytest.raises(ZooError) as e:
        build_dataset("ucf101", root=str(ucf_parent), split="all", frames=8, index_cache=cache)
    assert f"none of the 6 listed ucf101 videos is under {ucf_parent}" in str(e.value)
    assert "Did you mean" not in str(e.value) and "max_bad_fraction" not in str(e.value)


def test_no_usable_file_is_not_answered_with_max_bad_fraction(video_tree, cache):
    for path in video_tree.rglob("*.*"):
        path.write_bytes(b"not a video")
    with pytest.raises(ZooError) as e:
        build_dataset("folder", root=str(video_tree), frames=8, index_cache=cache)
    assert str(e.value).startswith(f"no usable videos under {video_tree} (listed 4, found 4, missing 0, "
                                   "unreadable 4, too_large 0, too_short 0, usable 0); `zoo data check` lists why")
    assert "max_bad_fraction" not in str(e.value)


def test_a_kinetics_root_above_the_annotations_names_the_folder_that_has_them(shared_dir, tmp_path, cache):
    k600 = shared_dir / "data" / "kinetics600"
    root = tmp_path / "kinetics600"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(k600 / "validate.csv", root / "annotations" / "validate.csv")
    row = read_annotations(k600 / "validate.csv")[0]
    write(root / "validate" / row["label"] / f"{clip_stem(row['youtube_id'], row['time_start'], row['time_end'])}"
          ".mp4", n=20, height=36, width=48, codec="libx264")
    with pytest.raises(ZooError, match=f"Did you mean --data-root {root}\\?$"):
        build_dataset("kinetics600", root=str(tmp_path), split="val", frames=8, index_cache=cache)
    assert len(build_dataset("kinetics600", root=str(root), split="val", frames=8, index_cache=cache)) == 1
