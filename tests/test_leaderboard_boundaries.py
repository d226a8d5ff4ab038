"""`zoo.leaderboard.comparable` on both sides of each of its boundaries: exactly the preset's sample counts (one fewer
or one more of either side is not comparable; a preset without real clips takes any real count) and detector weights
verified against the table (pinned locally or unverified is not comparable); and rows at different resolutions are
ranked apart and meet a paper's number only at its resolution."""

from __future__ import annotations

import json

import pytest

from zoo.leaderboard import COLUMNS, comparable
from zoo.metrics.presets import PRESETS

VERIFIED = json.dumps({"detector": {"trust": "verified", "verified": True}})


def row(preset: str, num_real: int, num_fake: int, verified: str = "True", protocol: str = VERIFIED) -> dict:
    out = {c: "" for c in COLUMNS}
    out.update(preset=preset, metric=PRESETS[preset].metric, num_real=num_real, num_fake=num_fake,
               detector_verified=verified, protocol=protocol)
    return out


@pytest.mark.parametrize("preset", ["fvd2048_16f", "fvd256_16f_videogpt", "kvd_shapes", "acd_shapes"])
@pytest.mark.parametrize("real_delta, fake_delta", [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1)])
def test_sample_counts_must_equal_the_presets_on_both_sides(preset, real_delta, fake_delta):
    p = PRESETS[preset]
    real, fake = p.num_real + real_delta, p.num_fake + fake_delta
    ok, why = comparable(row(preset, real, fake))
    if real_delta == fake_delta == 0:
        assert (ok, why) == (True, "yes")
    else:
        wants = f"preset wants {p.num_real}/{p.num_fake}"
        assert not ok and why == f"sample counts N={real}/{fake} (real/generated), {wants}"


@pytest.mark.parametrize("preset", ["isv2048_ucf", "is2048_ucf", "is_shapes"])
@pytest.mark.parametrize("fake_delta", [-1, 0, 1])
def test_presets_without_real_clips_check_only_the_generated_count(preset, fake_delta):
    p = PRESETS[preset]
    assert p.num_real == 0
    for num_real in (0, 7, 2048):
        ok, _ = comparable(row(preset, num_real, p.num_fake + fake_delta))
        assert ok == (fake_delta == 0), (num_real, fake_delta)


@pytest.mark.parametrize("real_delta", [-1, 0, 1])
def test_bits_per_dim_takes_exactly_its_real_clips_and_no_generated_ones(real_delta):
    ok, _ = comparable(row("bpd", 2048 + real_delta, 0))
    assert ok == (real_delta == 0)
    assert not comparable(row("bpd", 2048, 1))[0], "bpd generates nothing"


@pytest.mark.parametrize("verified, trust, ok, reason", [
    ("True", "verified", True, "yes"),
    ("pinned locally", "pinned locally", False, "pinned locally (first-use checksum)"),
    ("True", None, False, "pinned locally"),  # rows written before trust levels
    ("True", "unverified", False, "pinned locally"),  # a True column without the table's verification
    ("False", "verified", False, "unverified detector weights"),
    ("", "verified", False, "unverified detector weights"),
])
def test_only_table_verified_detector_weights_are_comparable(verified, trust, ok, reason):
    detector = {"weights": "i3d.pt"} | ({"trust": trust} if trust else {"verified": True})
    got, why = comparable(row("fvd2048_16f", 2048, 2048, verified, json.dumps({"detector": detector})))
    assert got == ok and reason in why


def test_every_reason_is_listed_and_unknown_presets_are_refused():
    ok, why = comparable(row("fvd2048_16f", 2047, 2048, "False"))
    assert not ok and why.count(";") == 1 and "unverified" in why and "sample counts" in why
    assert comparable({"preset": "fvd999"}) == (False, "unknown preset fvd999")


def scored_at(resolution, value: float, model: str) -> dict:
    out = row("fvd2048_16f", 2048, 2048, protocol=json.dumps({"detector": {"trust": "verified", "verified": True},
                                                              "resolution": resolution}))
    out.update(model=model, dataset="ucf101", value=repr(value), date="2026-01-01T00:00:00+00:00",
               code_version="0.1.0", extra="{}")
    return out


def test_rows_at_other_resolutions_are_ranked_apart_and_meet_the_paper_only_at_its_own():
    from zoo.leaderboard import _tables, protocol_label, row_resolution

    low, high = scored_at(64, 100.0, "small"), scored_at(256, 900.0, "large")
    assert (row_resolution(low), row_resolution(high)) == (64, 256)
    assert comparable(low) == comparable(high) == (True, "yes"), "each follows its preset"
    records = _tables([high, low])[("ucf101", "fvd")]
    zoo_rows = [r for r in records if not r["model"].endswith("(paper)")]
    # one ranking per resolution: the 64px row's lower FVD does not put it above the 256px one within one ranking
    assert [(r["model"], r["protocol"]) for r in zoo_rows] == [("large", "fvd2048_16f @ 256px"),
                                                                ("small", "fvd2048_16f @ 64px")]
    paper = {r["model"]: r for r in records if r["model"].endswith("(paper)")}
    assert paper["mocogan (paper)"]["protocol"] == protocol_label("fvd2048_16f", 256) == "fvd2048_16f @ 256px"
    assert paper["mocogan (paper)"]["comparable"] == "same protocol"
    only_low = {r["model"]: r for r in _tables([low])[("ucf101", "fvd")]}
    assert only_low["mocogan (paper)"]["comparable"] == "different protocol: not comparable", \
        "a 64px FVD is not the paper's 256px FVD"


@pytest.mark.parametrize("protocol", ["{}", "not json", json.dumps({"resolution": "64"}), json.dumps({"resolution": 0}),
                                      json.dumps({"resolution": True})])
def test_a_row_without_a_usable_resolution_keeps_the_bare_preset(protocol):
    from zoo.leaderboard import protocol_label, row_resolution

    out = row("fvd2048_16f", 2048, 2048, protocol=protocol)
    assert row_resolution(out) is None and protocol_label("fvd2048_16f", row_resolution(out)) == "fvd2048_16f"


def test_rows_record_the_resolution_the_clips_were_scored_at():
    from zoo.evaluation import EvalRequest
    from zoo.leaderboard import scored_resolution

    assert scored_resolution(EvalRequest(metrics=["fvd"], resolution=32), {"resolution": 128}) == 32
    assert scored_resolution(EvalRequest(metrics=["fvd"]), {"resolution": 128}) == 128
    assert scored_resolution(EvalRequest(metrics=["fvd"]), {}) == 64  # DataConfig's default
