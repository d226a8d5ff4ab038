"""`zoo.leaderboard.make_row`, column by column: what a row says about the model, the data, the protocol and the
detector is exactly what was scored (a row is the leaderboard's only record of how a number was made)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from zoo.config import stable_hash
from zoo.evaluation import EvalRequest, EvalResult
from zoo.leaderboard import COLUMNS, _verified_column, make_row
from zoo.metrics.presets import PRESETS

DETECTOR = {"detector": "i3d_torchscript", "weights": "file:i3d.pt", "sha256": "ab" * 32, "trust": "verified",
            "verified": True}
EXPERIMENT = {"model_name": "mocogan", "model": {"ngf": 8}, "data": {"name": "ucf101", "split": "train",
              "resolution": 128}, "train": {"seed": 3, "max_steps": 10}, "recorded": {"video_reader": "decord"}}
RUN = {"model_name": "mocogan", "experiment": EXPERIMENT, "sha256": "cd" * 32, "iteration": 1234}


def result(values=None, interval=(1.5, 2.5), detector=DETECTOR) -> EvalResult:
    return EvalResult("fvd", PRESETS["fvd2048_16f"], values or {"fvd": 12.25, "fvd_tfgan": 3.0, "_samples": [1]},
                      interval, 2048, 2047, "f" * 16, detector, "hit")


def test_a_checkpoint_row_records_every_column_from_what_was_scored():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    row = make_row(result(), EvalRequest(metrics=["fvd2048_16f"], seed=11), RUN, "0.1.0+abc")
    assert list(row) == list(COLUMNS)
    assert before <= datetime.fromisoformat(row["date"]) <= before + timedelta(seconds=5)
    assert row["date"].endswith("+00:00") and "." not in row["date"], "UTC, whole seconds"
    wanted = {
        "model": "mocogan", "dataset": "ucf101", "split": "train", "preset": "fvd2048_16f", "fingerprint": "f" * 16,
        "metric": "fvd", "value": "12.25", "interval_low": "1.5", "interval_high": "2.5", "num_real": 2048,
        "num_fake": 2047, "detector": "i3d_torchscript", "detector_weights": "file:i3d.pt",
        "detector_sha256": "ab" * 32, "detector_verified": "True", "checkpoint_sha256": "cd" * 32,
        "config_hash": stable_hash({k: EXPERIMENT[k] for k in ("model_name", "model", "data", "train")}),
        "seed": 3, "training_steps": 1234, "code_version": "0.1.0+abc", "samples": "",
        "extra": json.dumps({"fvd_tfgan": 3.0}),
    }
    assert {k: row[k] for k in wanted} == wanted
    protocol = json.loads(row["protocol"])
    assert protocol == {**PRESETS["fvd2048_16f"].protocol(), "resolution": 128, "eval_seed": 11,
                        "detector": DETECTOR}
    assert row["protocol"] == json.dumps(protocol, sort_keys=True)


def test_the_config_hash_ignores_what_does_not_change_the_model():
    moved = {**EXPERIMENT, "recorded": {"video_reader": "pyav"}}
    row = make_row(result(), EvalRequest(metrics=["fvd"]), {**RUN, "experiment": moved}, "v")
    assert row["config_hash"] == make_row(result(), EvalRequest(metrics=["fvd"]), RUN, "v")["config_hash"]
    retrained = {**EXPERIMENT, "train": {"seed": 4, "max_steps": 10}}
    other = make_row(result(), EvalRequest(metrics=["fvd"]), {**RUN, "experiment": retrained}, "v")
    assert other["config_hash"] != row["config_hash"] and other["seed"] == 4


def test_folder_rows_name_the_folders_and_leave_checkpoint_columns_empty(tmp_path):
    request = EvalRequest(metrics=["fvd"], fake_dir=str(tmp_path / "samples_v2"), real_dir=str(tmp_path / "real"),
                          resolution=32)
    row = make_row(result(interval=None), request, {}, "v")
    assert (row["model"], row["dataset"], row["split"]) == ("dir:samples_v2", "folder", "")
    assert (row["interval_low"], row["interval_high"]) == ("", "")
    assert (row["checkpoint_sha256"], row["config_hash"], row["seed"], row["training_steps"]) == ("", "", "", "")
    assert json.loads(row["protocol"])["resolution"] == 32


def test_the_data_comes_from_the_request_over_the_checkpoint():
    row = make_row(result(), EvalRequest(metrics=["fvd"], data="kinetics600"), RUN, "v")
    assert (row["dataset"], row["split"]) == ("kinetics600", "train")
    real_dir = make_row(result(), EvalRequest(metrics=["fvd"], real_dir="/x"), RUN, "v")
    assert (real_dir["model"], real_dir["dataset"], real_dir["split"]) == ("mocogan", "folder", "")
    bare = make_row(result(), EvalRequest(metrics=["fvd"]), {"model_name": "tgan2"}, "v")
    assert (bare["model"], bare["dataset"], bare["split"], bare["seed"]) == ("tgan2", "", "", "")
    assert json.loads(bare["protocol"])["resolution"] == 64, "DataConfig's default resolution"


def test_the_value_is_the_headline_as_a_float_repr_and_extra_holds_the_rest():
    row = make_row(result(values={"fvd": 1, "fvd_undefined": "one block", "_samples": [0]}), EvalRequest(["fvd"]),
                   RUN, "v")
    assert row["value"] == "1.0" and json.loads(row["extra"]) == {"fvd_undefined": "one block"}
    assert row["extra"] == json.dumps({"fvd_undefined": "one block"}, sort_keys=True)
    ordered = make_row(result(values={"fvd": 0.1, "zeta": 1.0, "alpha": 2.0}), EvalRequest(["fvd"]), RUN, "v")
    assert ordered["value"] == "0.1" and ordered["extra"] == '{"alpha": 2.0, "zeta": 1.0}'


@pytest.mark.parametrize("detector, column", [
    ({"trust": "verified"}, "True"),
    ({"trust": "pinned locally"}, "pinned locally"),
    ({"trust": "unverified"}, "False"),
    ({"verified": True}, "True"),  # records written before trust levels
    ({"verified": False}, "False"),
    ({}, "False"),
    ({"trust": "", "verified": True}, "True"),
    ({"trust": "something else", "verified": True}, "False"),
])
def test_the_verified_column_says_true_only_for_table_verified_weights(detector, column):
    assert _verified_column(detector) == column
