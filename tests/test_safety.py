"""Loading a checkpoint never runs code, and bad checkpoint files give one-line errors at every entry point.

The payload is a real `__reduce__` pickle that creates a marker file when unpickled (what a hostile checkpoint would
do with `os.system`); each test checks the marker is never created. The whole-file payload goes through the real
`zoo` console script once per entry point; the payload hidden inside an otherwise valid checkpoint goes through the
same `main()` in-process.
"""

import os
import pickle
import re
import subprocess

import pytest
import torch

from tests.commands import ZOO
from tests.conftest import REPO
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models.base import load_model

TINY = str(REPO / "experiments" / "mocogan" / "tiny.yaml")
GPT_TINY = str(REPO / "experiments" / "videogpt" / "tiny.yaml")


class Payload:
    """Unpickling this calls `open(marker, "w")`: a file appears if the loader runs code from the checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real `zoo fit` (console script) with TMPDIR pointing at an empty folder of its own."""
    base = tmp_path_factory.mktemp("safety")
    tmpdir = base / "tmpdir"
    tmpdir.mkdir()
    run_dir = base / "run"
    cmd = [*ZOO, "fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(run_dir), "--max-steps", "2",
           "--set", "train.checkpoint_every=1", "--set", "train.sample_every=0", "--set", "data.num_workers=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(tmpdir)})
    assert done.returncode == 0, done.stderr[-3000:]
    return {"base": base, "tmpdir": tmpdir, "run_dir": run_dir, "ckpt": run_dir / "checkpoints" / "last.ckpt"}


@pytest.fixture()
def evil(run, tmp_path):
    """Hostile files: the payload as the whole file, as a raw pickle, and hidden inside a valid checkpoint."""
    marker = tmp_path / "MARKER"
    whole = tmp_path / "whole.ckpt"
    torch.save(Payload(marker), whole)
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    checkpoint = torch.load(run["ckpt"], weights_only=True)
    checkpoint["zoo"]["experiment"]["note"] = Payload(marker)  # deep inside the record every loader reads
    hidden = tmp_path / "hidden.ckpt"
    torch.save(checkpoint, hidden)
    return {"marker": marker, "whole": whole, "raw": raw, "hidden": hidden, "dir": tmp_path}


def entry_points(ckpt, work):
    """argv of every `zoo` command that reads a checkpoint given by the user."""
    return {
        "sample": ["sample", "--ckpt", str(ckpt), "--out", str(work / "s.gif")],
        "eval": ["eval", "--metric", "fvd", "--ckpt", str(ckpt), "--no-leaderboard"],
        "fit --resume": ["fit", "--model", "mocogan", "--config", TINY, "--run-dir", str(work / "r"),
                         "--resume", str(ckpt)],
        "vqvae_ckpt": ["fit", "--model", "videogpt", "--config", GPT_TINY, "--run-dir", str(work / "g"),
                       "--set", f"model.vqvae_ckpt={ckpt}"],
    }


def test_run_leaves_no_temporary_file_anywhere(run):
    assert list(run["tmpdir"].iterdir()) == [], "nothing may be left in (or staged through) the system temp folder"
    names = sorted(p.name for p in (run["run_dir"] / "checkpoints").iterdir())
    assert names == ["last.ckpt", "step=0000001.ckpt", "step=0000002.ckpt"], names


def test_zoo_checkpoints_load_weights_only(run):
    checkpoint = torch.load(run["ckpt"], weights_only=True)  # raises if anything but tensors and plain values
    assert {"state_dict", "optimizer_states", "loops", "callbacks", "zoo"} <= set(checkpoint)


def test_whole_file_payload_is_refused_by_every_cli_entry_point(evil, monkeypatch):
    env = {**os.environ, "ZOO_OFFLINE": "1", "ZOO_CACHE": str(evil["dir"] / "cache")}
    for name, argv in entry_points(evil["whole"], evil["dir"]).items():
        done = subprocess.run([*ZOO, *argv], capture_output=True, text=True, timeout=300, env=env)
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2, f"{name}: {done.stderr[-2000:]}"
        assert len(err) == 1 and "refers to the Python object io.open" in err[0], f"{name}: {done.stderr[-2000:]}"
        assert not evil["marker"].exists(), f"{name} ran code from the checkpoint"


def test_payload_hidden_in_a_valid_checkpoint_is_refused_everywhere(evil, capsys, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("ZOO_CACHE", str(evil["dir"] / "cache"))
    for ckpt in (evil["hidden"], evil["raw"]):
        for name, argv in entry_points(ckpt, evil["dir"]).items():
            assert main(argv) == 2, name
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "Traceback" not in err, f"{name}: {err}"
            assert "refers to the Python object io.open" in err or "can be loaded safely" in err, f"{name}: {err}"
        with pytest.raises(ZooError, match="io.open|can be loaded safely"):
            load_model(ckpt)
    assert not evil["marker"].exists()


def test_lightning_resume_path_loads_weights_only(run, evil):
    """Lightning's own checkpoint reading (`Trainer.fit(ckpt_path=...)`) goes through the zoo's CheckpointIO."""
    from zoo.training import SameFolderCheckpointIO

    io = SameFolderCheckpointIO()
    assert io.load_checkpoint(run["ckpt"], weights_only=False)["zoo"]["iteration"] == 2
    with pytest.raises(ZooError, match="io.open"):
        io.load_checkpoint(evil["hidden"], weights_only=False)  # whatever the caller asks
    assert not evil["marker"].exists()


@pytest.mark.parametrize("content,message", [
    (b"", "is empty (0 bytes)"),
    ("half", "is truncated or corrupt"),
    (b"model: mocogan\n", "is not a checkpoint"),
    (b"\x80\x02}q\x00.", "is a raw pickle, not a PyTorch checkpoint"),  # pickle.dumps({}, protocol=2)
    ("list", "holds a list, not a video-zoo checkpoint"),
])
def test_unusable_files_are_one_line_errors_without_pickle_internals(run, tmp_path, content, message, capsys):
    path = tmp_path / "bad.ckpt"
    if content == "half":
        path.write_bytes(run["ckpt"].read_bytes()[: run["ckpt"].stat().st_size // 2])
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(ZooError, match=re.escape(message)) as e:
        load_model(path)
    text = str(e.value)
    assert "\n" not in text and "Ran out of input" not in text and "Memo value" not in text and "miniz" not in text
    assert main(["sample", "--ckpt", str(path), "--out", str(tmp_path / "s.gif")]) == 2
    assert message in capsys.readouterr().err


def test_weights_that_do_not_match_the_recorded_config_are_named(run, tmp_path):
    checkpoint = torch.load(run["ckpt"], weights_only=True)
    checkpoint["zoo"]["model_config"]["ngf"] *= 2  # the record says a wider generator than the weights are
    path = tmp_path / "wider.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(ZooError, match=r"weights do not match the architecture its config describes: .*different "
                                       r"shapes \(checkpoint vs model\) generator\.") as e:
        load_model(path)
    assert "\n" not in str(e.value)
    checkpoint = torch.load(run["ckpt"], weights_only=True)
    name = next(iter(checkpoint["state_dict"]))
    del checkpoint["state_dict"][name]
    checkpoint["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(checkpoint, path)
    with pytest.raises(ZooError, match=rf"missing weights {name}; unexpected weights extra\.weight"):
        load_model(path)
    checkpoint = torch.load(run["ckpt"], weights_only=True)
    checkpoint["zoo"]["spec"]["colour_depth"] = 10
    torch.save(checkpoint, path)
    with pytest.raises(ZooError, match="incomplete or foreign 'zoo' record"):
        load_model(path)


def test_a_save_that_fails_midway_leaves_no_file_under_the_final_name(tmp_path):
    from zoo.training import SameFolderCheckpointIO

    target = tmp_path / "checkpoints" / "step=0000005.ckpt"
    with pytest.raises(Exception):  # noqa: B017 - any pickling failure
        SameFolderCheckpointIO().save_checkpoint({"w": torch.zeros(1000), "bad": lambda: None}, target)
    assert list(target.parent.iterdir()) == [], "neither a truncated checkpoint nor its temporary file is left"
    SameFolderCheckpointIO().save_checkpoint({"w": torch.ones(3)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in target.parent.iterdir()] == [target.name]
