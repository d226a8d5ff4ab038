"""Kinetics-600 CSV parsing against the real annotation files, with most clips missing (as in every real copy)."""

import shutil

import pytest

from tests.datasets.media import write
from zoo.datasets import build_dataset
from zoo.datasets.kinetics import clip_stem, read_annotations


def test_real_csvs_parse(shared_dir):
    k600 = shared_dir / "data" / "kinetics600"
    rows = read_annotations(k600 / "release2018" / "kinetics_val.csv")
    assert len(rows) == 30000 and len({r["label"] for r in rows}) == 600
    assert len(read_annotations(k600 / "validate.csv")) == 28267


def test_kinetics_indexes_what_exists(shared_dir, tmp_path, cache):
    k600 = shared_dir / "data" / "kinetics600"
    root = tmp_path / "kinetics600"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(k600 / "validate.csv", root / "annotations" / "validate.csv")
    shutil.copy(k600 / "label_map_600.txt", root / "annotations" / "label_map_600.txt")
    rows = read_annotations(k600 / "validate.csv")
    present = [rows[0], rows[5000], rows[20000]]
    for k, row in enumerate(present):  # nested as <split>/<label>/ except one flat in the split folder
        stem = clip_stem(row["youtube_id"], row["time_start"], row["time_end"])
        folder = root / "validate" / (row["label"] if k else "")
        write(folder / f"{stem}.mp4", n=20, height=36, width=48, codec="libx264", seed=k)
    d = build_dataset("kinetics600", root=str(root), split="val", frames=8, resolution=16, index_cache=cache)
    assert d.counts["missing"] == 28267 - 3 and len(d) == 3  # missing clips are reported, not an error
    assert len(d.class_names) == 600 and d.class_names == sorted(d.class_names)
    labels = sorted(d.class_names.index(r["label"]) for r in present)
    assert sorted(d.label_of(i) for i in range(3)) == labels
    assert d[1]["video"].shape == (3, 8, 16, 16)


def test_missing_csv_says_where_to_download(tmp_path, cache):
    (tmp_path / "k").mkdir()
    with pytest.raises(Exception, match="cvdfoundation"):
        build_dataset("kinetics600", root=str(tmp_path / "k"), split="train", index_cache=cache)
