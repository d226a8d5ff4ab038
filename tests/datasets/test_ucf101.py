"""UCF-101 split parsing against the official lists, and the dataset on a fake tree of tiny real videos."""

import pytest

from tests.datasets.media import write
from zoo.datasets import build_dataset
from zoo.datasets.ucf101 import match_case, parse_split
from zoo.errors import ZooError


@pytest.fixture
def splits(shared_dir):
    return shared_dir / "data" / "ucfTrainTestlist"


@pytest.mark.parametrize("fold,train,test", [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_official_split_counts(splits, fold, train, test):
    classes, train_videos = parse_split(splits, "train", fold)
    _, test_videos = parse_split(splits, "test", fold)
    _, all_videos = parse_split(splits, "all", fold)
    assert len(classes) == 101 and classes[0] == "ApplyEyeMakeup" and classes[-1] == "YoYo"
    assert (len(train_videos), len(test_videos), len(all_videos)) == (train, test, 13320)
    assert len({p for p, _ in all_videos}) == 13320  # train and test are disjoint
    assert {label for _, label in all_videos} == set(range(101))
    trainlist = (splits / f"trainlist0{fold}.txt").read_text().splitlines()
    # the label read from the folder name equals the official 1-based label of the train list, minus one
    assert all(int(line.split()[1]) - 1 == label for line, (_, label) in zip(trainlist, train_videos))


def test_case_quirks_match_files_on_disk(splits, tmp_path):
    _, videos = parse_split(splits, "all", 1)
    quirky = [(p, lab) for p, lab in videos if p.lower().startswith("handstandpushups/")]
    assert quirky and all(p.startswith("HandstandPushups/v_HandStandPushups") for p, _ in quirky)
    (tmp_path / "HandStandPushups").mkdir()  # a copy whose folder is spelled like the file names
    for p, _ in quirky:
        (tmp_path / "HandStandPushups" / p.split("/")[1].lower()).touch()
    matched = match_case(tmp_path, quirky)
    assert all((tmp_path / p).is_file() for p, _ in matched)


def _fake_ucf(root, classes=("ApplyEyeMakeup", "Archery", "YoYo"), per_class=2, missing=()):
    lines_train, lines_test, ind = [], [], []
    for c, name in enumerate(classes, 1):
        ind.append(f"{c} {name}")
        for g in range(per_class):
            rel = f"{name}/v_{name}_g{g + 1:02d}_c01.avi"
            (lines_train if g == 0 else lines_test).append(f"{rel} {c}" if g == 0 else rel)
            if rel not in missing:
                write(root / rel, n=24, height=48, width=64, seed=c * 10 + g)
    split_dir = root / "ucfTrainTestlist"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "classInd.txt").write_text("\r\n".join(ind) + "\r\n")
    for fold in (1, 2, 3):
        (split_dir / f"trainlist0{fold}.txt").write_text("\r\n".join(lines_train) + "\r\n")
        (split_dir / f"testlist0{fold}.txt").write_text("\r\n".join(lines_test) + "\r\n")
    return root


def test_ucf101_dataset_on_fake_tree(tmp_path, cache):
    root = _fake_ucf(tmp_path / "UCF-101")
    train = build_dataset("ucf101", root=str(root), split="train", frames=8, resolution=32, index_cache=cache)
    test = build_dataset("ucf101", root=str(root), split="test", frames=8, resolution=32, index_cache=cache)
    every = build_dataset("ucf101", root=str(root), split="all", frames=8, resolution=32, index_cache=cache)
    assert (len(train), len(test), len(every)) == (3, 3, 6)
    assert train.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    item = train[2]
    assert item["video"].shape == (3, 8, 32, 32) and int(item["label"]) == 2
    assert -1 <= item["video"].min() and item["video"].max() <= 1


def test_missing_files_are_counted_and_too_many_is_an_error(tmp_path, cache):
    root = _fake_ucf(tmp_path / "UCF-101", missing=("Archery/v_Archery_g02_c01.avi",))
    d = build_dataset("ucf101", root=str(root), split="all", frames=8, index_cache=cache, max_bad_fraction=0.2)
    assert d.counts["missing"] == 1 and d.counts["usable"] == 5
    assert len(d) == 6, "a listed file that is missing stays an item (replaced when read), as the split lists it"
    gone = next(i for i in range(len(d)) if d.item_name(i) == "Archery/v_Archery_g02_c01.avi")
    item = d[(gone, 3)]
    assert item["video"].shape == (3, 8, 64, 64) and item["video"].std() > 0.02, "a real replacement clip"
    assert list(d.failures) == ["Archery/v_Archery_g02_c01.avi"]
    with pytest.raises(ZooError, match=r"zoo data check`, or go on without them: --set data.max_bad_fraction=0.17$"):
        build_dataset("ucf101", root=str(root), split="all", frames=8, index_cache=cache, max_bad_fraction=0.1)


def test_too_short_videos_are_skipped_and_counted(tmp_path, cache):
    root = _fake_ucf(tmp_path / "UCF-101")
    write(root / "YoYo/v_YoYo_g02_c01.avi", n=60, height=48, width=64)  # the only one long enough
    d = build_dataset("ucf101", root=str(root), split="all", frames=13, frame_stride=2, index_cache=cache)
    assert d.counts["too_short"] == 5 and len(d) == 1  # 24 frames < the 25-frame span of 13 x stride 2
    assert d.num_starts(0) == 60 - 25 + 1
    with pytest.raises(ZooError, match="too_short 6"):
        build_dataset("ucf101", root=str(root), split="all", frames=31, frame_stride=2, index_cache=cache)


def test_missing_root_or_split_lists_say_layout_and_download(tmp_path, cache):
    with pytest.raises(ZooError, match="crcv.ucf.edu"):
        build_dataset("ucf101", root=str(tmp_path / "nowhere"), index_cache=cache)
    with pytest.raises(ZooError, match="ucfTrainTestlist"):
        build_dataset("ucf101", root=str(tmp_path), index_cache=cache)
    with pytest.raises(ZooError, match="no dataset root"):
        build_dataset("ucf101", index_cache=cache)
