"""The protocol fingerprint of conditional data: condition settings count only when `data.condition != none`, so
every unconditional fingerprint (the key of cached real statistics) is the one computed before conditions existed."""
import dataclasses

from zoo.config import DataConfig
from zoo.datasets import build_dataset
from zoo.datasets.cliplist import make_clip_list, protocol_fingerprint


def test_unconditional_fingerprints_are_unchanged():
    """Values computed with the code of commit 0f8dafc (before any condition field existed)."""
    assert protocol_fingerprint(DataConfig()) == "54a829393d59a363"
    assert protocol_fingerprint(DataConfig(name="ucf101", frames=16, resolution=128)) == "55a49cffe13df7bd"
    shapes = build_dataset("shapes", frames=4, resolution=16, num_videos=20)
    assert protocol_fingerprint(shapes.config, make_clip_list(shapes, 8, 0)) == "0dda4a8d0c791680"
    unused = DataConfig(edge_low=0.05, edge_high=0.9, keypoint_sigma=3.0, condition_classes=7)
    assert protocol_fingerprint(unused) == "54a829393d59a363", "condition fields mean nothing without a condition"


def test_conditional_fingerprints_carry_the_condition_and_exactly_its_settings():
    base = DataConfig(name="shapes")
    fingerprints = {c: protocol_fingerprint(dataclasses.replace(base, condition=c))
                    for c in ("none", "segmentation", "edges", "keypoints", "source")}
    assert len(set(fingerprints.values())) == 5
    edges = dataclasses.replace(base, condition="edges")
    for change, differs in (({"edge_low": 0.1}, True), ({"edge_high": 0.5}, True), ({"condition_classes": 4}, False),
                            ({"keypoint_sigma": 2.0}, False)):
        assert (protocol_fingerprint(dataclasses.replace(edges, **change)) != fingerprints["edges"]) is differs
    keypoints = dataclasses.replace(base, condition="keypoints")
    assert protocol_fingerprint(dataclasses.replace(keypoints, keypoint_sigma=2.0)) != fingerprints["keypoints"]
    assert protocol_fingerprint(dataclasses.replace(keypoints, edge_low=0.1)) == fingerprints["keypoints"]
    paired = DataConfig(name="paired", condition="segmentation", condition_classes=4)
    assert protocol_fingerprint(paired) != protocol_fingerprint(dataclasses.replace(paired, condition_classes=5))
    dataset = build_dataset("shapes", frames=2, resolution=16, num_videos=10, condition="edges")
    clips = make_clip_list(dataset, 4, 0)
    assert clips.fingerprint == protocol_fingerprint(dataset.config, clips)
    assert clips.config["condition"] == "edges" and clips.config["edge_low"] == 0.2
    plain = make_clip_list(build_dataset("shapes", frames=2, resolution=16, num_videos=10), 4, 0)
    assert clips.clips == plain.clips and clips.fingerprint != plain.fingerprint and "condition" not in plain.config
