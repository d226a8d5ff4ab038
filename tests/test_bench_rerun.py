"""`zoo bench` called again into the same `--out` with other settings reports results computed under those settings
(issue 28.1): training is keyed on the config (every `--set` included), scores and the floor on sample counts and
the rest of the protocol; a stale result is computed again, with one line saying why."""

import csv
import json
from pathlib import Path

import yaml

from zoo.cli import main
from zoo.metrics.presets import SHAPES_PRESETS


def bench(out: Path, *extra: str) -> int:
    return main(["bench", "--models", "pixelcnn", "--experiment", "tiny", "--bootstrap", "0", "--out", str(out),
                 *extra])


def state_of(out: Path) -> dict:
    return json.loads((out / "state.json").read_text())


def rows_of(out: Path, model: str) -> list[dict]:
    return [r for r in csv.DictReader((out / "leaderboard.csv").open()) if r["model"] == model]


def finals(entry: dict) -> dict:
    return {name: entry["final"][name][name.split("_")[0]] for name in SHAPES_PRESETS}


def test_a_rerun_with_other_samples_and_lr_trains_and_scores_again(tmp_path, capsys):
    out = tmp_path / "bench"
    assert bench(out, "--max-steps", "2", "--num-samples", "10") == 0
    first = state_of(out)
    capsys.readouterr()
    assert bench(out, "--max-steps", "2", "--num-samples", "12", "--set", "model.lr=0.5") == 0
    printed = capsys.readouterr().out
    assert "pixelcnn: trained under other settings (model.lr 0.001 -> 0.5); training again from step 0, the " \
           "earlier run moved to" in printed and "done earlier" not in printed
    assert "real-vs-real floor at 8x8: measured under other settings (num_samples 10 -> 12); measuring" in printed
    # the run was trained again under the new learning rate; the earlier run is kept aside, not deleted
    assert yaml.safe_load((out / "runs" / "pixelcnn" / "config.yaml").read_text())["model"]["lr"] == 0.5
    (aside,) = (out / "runs").glob("pixelcnn.replaced-*")
    assert yaml.safe_load((aside / "config.yaml").read_text())["model"]["lr"] == 0.001
    # the state's numbers are the second call's: those of its leaderboard rows (12 clips, the new checkpoint)
    entry, state = state_of(out)["models"]["pixelcnn"], state_of(out)
    old_rows, new_rows = rows_of(out, "pixelcnn")[:5], rows_of(out, "pixelcnn")[5:]
    assert {r["num_fake"] for r in old_rows} == {"10"} and {r["num_fake"] for r in new_rows} == {"12"}
    assert {r["checkpoint_sha256"] for r in new_rows}.isdisjoint(r["checkpoint_sha256"] for r in old_rows)
    assert finals(entry) == {r["preset"]: float(r["value"]) for r in new_rows}
    assert finals(entry) != finals(first["models"]["pixelcnn"])
    assert entry["eval_key"]["num_samples"] == 12 and entry["curve"] == [{"step": 2, **finals(entry)}]
    floor = state["floor"]["8x8"]
    assert floor["settings"]["num_samples"] == 12 and floor["values"] != first["floor"]["8x8"]["values"]
    floor_rows = rows_of(out, "real-vs-real")[5:]
    assert {r["num_real"] for r in floor_rows} == {"12"}
    assert {r["preset"]: float(r["value"]) for r in floor_rows} == {
        name: floor["values"][name][name.split("_")[0]] for name in SHAPES_PRESETS}


def test_other_sample_counts_score_the_kept_checkpoints_again_without_training(tmp_path, capsys):
    from zoo.bench import BenchRequest, _curve_point, _evaluate

    out = tmp_path / "bench"
    assert bench(out, "--max-steps", "2", "--eval-every", "1", "--num-samples", "10") == 0
    ckpts = out / "runs" / "pixelcnn" / "checkpoints"
    weights = {p.name: p.read_bytes() for p in ckpts.glob("step=*.ckpt")}
    first = state_of(out)["models"]["pixelcnn"]
    capsys.readouterr()
    assert bench(out, "--max-steps", "2", "--eval-every", "1", "--num-samples", "12") == 0
    printed = capsys.readouterr().out
    assert "pixelcnn: scored under other settings (num_samples 10 -> 12); scoring again" in printed
    assert "training steps" not in printed and "trained under other settings" not in printed
    assert {p.name: p.read_bytes() for p in ckpts.glob("step=*.ckpt")} == weights, "no step trained again"
    entry = state_of(out)["models"]["pixelcnn"]
    assert entry["steps"] == 2 and entry["wall_s"] == first["wall_s"]
    assert [p["step"] for p in entry["curve"]] == [1, 2]
    # the step-1 curve point is that checkpoint's score under the new settings, not the old one
    values, _ = _evaluate(BenchRequest(num_samples=12, bootstrap=0), ckpts / "step=0000001.ckpt", 8, False, None)
    assert entry["curve"][0] == _curve_point(1, values) != first["curve"][0]
    assert finals(entry) == {r["preset"]: float(r["value"]) for r in rows_of(out, "pixelcnn")[5:]}
    capsys.readouterr()
    assert bench(out, "--max-steps", "2", "--eval-every", "1", "--num-samples", "12") == 0
    assert "pixelcnn: done earlier (2 steps), skipped" in capsys.readouterr().out, "same settings: reused"
    assert bench(out, "--max-steps", "1", "--num-samples", "12") == 2  # fewer steps than trained: refused
    assert "has trained 2 steps, more than --max-steps 1; pass --max-steps 2 or more" in capsys.readouterr().err
