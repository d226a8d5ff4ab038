"""Every way torch's weights-only loader words a refusal becomes one line naming what was refused (issue 28.7).

The files are real: pickles built here, byte by byte or from a `__reduce__` class whose unpickling runs the shell
command `touch MARKER` through `os.system` (the classic payload), saved with `torch.save`, as raw pickles, or as the
`data.pkl` of an otherwise valid torch archive. Each is loaded through the zoo's loaders (checkpoints, I3D and
shapes_net detector weights) and `zoo sample`; the marker file must never appear, and no message may carry torch's
advice to retry with `weights_only=False`.
"""

import os
import pickle
import subprocess
import sys
import tarfile
import zipfile

import pytest
import torch
from torch import nn

from tests.commands import printed_lines
from tests.conftest import REPO
from zoo.cli import main
from zoo.errors import ZooError
from zoo.metrics.detectors import load_i3d
from zoo.metrics.detectors.shapes_net import load_shapes_net
from zoo.models.base import read_checkpoint

REFUSES = ", which safe (weights-only) loading refuses: loading it could run code"


class ShellPayload:
    """Unpickling this runs `touch <marker>` in a shell (`os.system`, pickled as `posix.system`)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def archive_with_pickle(path, data_pkl: bytes):
    """A torch.save archive whose `data.pkl` is replaced by `data_pkl` (every other record kept)."""
    torch.save({"w": torch.zeros(2)}, path.with_suffix(".src"))
    with zipfile.ZipFile(path.with_suffix(".src")) as src, zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            out.writestr(name, data_pkl if name.endswith("/data.pkl") else src.read(name))
    return path


def payload_files(tmp_path, marker):
    """The shell payload in each container torch reads: name -> path."""
    shell = ShellPayload(marker)
    files = {}
    files["torch.save archive"] = tmp_path / "archive.pt"
    torch.save(shell, files["torch.save archive"])
    files["legacy torch.save"] = tmp_path / "legacy.pt"
    torch.save(shell, files["legacy torch.save"], _use_new_zipfile_serialization=False)
    for protocol in (2, 5):
        files[f"raw pickle protocol {protocol}"] = tmp_path / f"raw{protocol}.pt"
        files[f"raw pickle protocol {protocol}"].write_bytes(pickle.dumps(shell, protocol=protocol))
    files["archive, protocol 4 data.pkl"] = archive_with_pickle(tmp_path / "p4.pt", pickle.dumps(shell, protocol=4))
    files["inside a checkpoint"] = tmp_path / "inside.pt"
    checkpoint = {"state_dict": {"w": torch.zeros(1)}, "zoo": {"experiment": {"note": shell}}}
    torch.save(checkpoint, files["inside a checkpoint"])
    return files


def one_line(load, path) -> str:
    with pytest.raises(ZooError) as e:
        load(path)
    text = str(e.value)
    assert "\n" not in text and "weights_only" not in text and "Traceback" not in text, text
    return text


def test_the_shell_payload_is_named_in_every_container_by_every_loader(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    for kind, path in payload_files(tmp_path, marker).items():
        assert one_line(read_checkpoint, path) == (
            f"checkpoint {path} refers to the Python object posix.system{REFUSES}. video-zoo checkpoints hold only "
            "tensors and plain values; do not load this file"), kind
        for load, what in ((load_i3d, "I3D weights"), (load_shapes_net, "shapes_net weights")):
            assert one_line(load, path) == (
                f"{what} {path} refers to the Python object posix.system{REFUSES}; use the official file (`zoo "
                "weights fetch`) or one you converted yourself"), kind
        assert main(["sample", "--ckpt", str(path), "--out", str(tmp_path / "s.gif")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "posix.system" in err[0] and "weights_only=False" not in err[0], (kind, err)
    assert not marker.exists(), "a loader ran the payload"
    assert not (tmp_path / "s.gif").exists()


# pickles (protocol 2 opcodes) that break one rule of torch's weights-only unpickler each, no global involved
BARE = {
    "reduce of a non-function": (b"\x80\x02K\x01)R.", "calls a function outside the allow-list"),
    "new object of a non-class": (b"\x80\x02K\x01)\x81.", "creates an object of a class outside the allow-list"),
    "build on an int": (b"\x80\x02K\x01}b.", "sets the state of an object of a class outside the allow-list"),
    "append to an int": (b"\x80\x02K\x01K\x02a.", "adds items to something that is not a list"),
    "extend an int": (b"\x80\x02K\x01(K\x02e.", "adds items to something that is not a list"),
    "setitem on an int": (b"\x80\x02K\x01K\x02K\x03s.", "sets items of something that is not a dict"),
    "setitems on an int": (b"\x80\x02K\x01(K\x02K\x03u.", "sets items of something that is not a dict"),
    "persistent id of another kind": (b"\x80\x02X\x01\x00\x00\x00a\x85Q.",
                                      "refers to something other than tensor storage"),
    "protocol 4 framing": (pickle.dumps({"a": 1}, protocol=4), "uses the pickle opcode FRAME (149), never written "
                                                               "by torch.save"),
    "protocol 0 text opcode": (b"(dp0\n.", "uses the pickle opcode DICT (100), never written by torch.save"),
}


@pytest.mark.parametrize("kind", BARE)
def test_each_refused_construct_is_named(tmp_path, kind):
    data, phrase = BARE[kind]
    path = archive_with_pickle(tmp_path / "bare.pt", data)
    assert one_line(read_checkpoint, path) == (f"checkpoint {path} {phrase}{REFUSES}. video-zoo checkpoints hold only "
                                               "tensors and plain values; do not load this file")
    assert one_line(load_i3d, path).startswith(f"I3D weights {path} {phrase}{REFUSES}; use the official file")


def test_a_raw_pickle_persistent_id_is_named(tmp_path):
    """Outside an archive torch's first unpickler has no storage loader at all: its own wording differs."""
    path = tmp_path / "pid.pt"
    path.write_bytes(b"\x80\x02K\x01Q.")
    assert one_line(read_checkpoint, path).startswith(f"checkpoint {path} refers to something other than tensor "
                                                      f"storage{REFUSES}.")


@pytest.mark.parametrize("module,name,phrase", [
    ("zipfile", "ZipInfo", "refers to the Python object zipfile.ZipInfo"),  # unsupported global
    ("posix", "system", "refers to the Python object posix.system"),  # blocked module
    ("nt", "system", "refers to the Python object nt.system"),
    ("sys", "exit", "refers to the Python object sys.exit"),
])
def test_each_refused_global_is_named(tmp_path, module, name, phrase):
    path = archive_with_pickle(tmp_path / "global.pt", b"\x80\x02c" + f"{module}\n{name}\n.".encode())
    assert one_line(read_checkpoint, path).startswith(f"checkpoint {path} {phrase}{REFUSES}.")


BARE_TORCH = """
import sys, warnings
from pathlib import Path
import torch
from zoo.safe_load import refusal
warnings.simplefilter("ignore")
try:
    torch.load(sys.argv[1], weights_only=True)
except Exception as e:
    print(str(e).splitlines()[0])
    print(refusal(e, Path(sys.argv[1])))
"""


@pytest.mark.parametrize("module,name,wording", [
    ("torch._dynamo.decorators", "_DimRange", "``torch.nested`` and ``torch._dynamo`` must be imported"),
    ("torch.distributed.tensor", "DTensor", "``torch.distributed.tensor`` must be imported"),
])
def test_globals_of_torch_modules_not_imported_are_named(tmp_path, module, name, wording):
    """torch words these apart, without the global's name, while the module is not imported: a bare process."""
    path = archive_with_pickle(tmp_path / "global.pt", b"\x80\x02c" + f"{module}\n{name}\n.".encode())
    done = subprocess.run([sys.executable, "-c", BARE_TORCH, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    torch_says, phrase = done.stdout.strip().splitlines()
    assert wording in torch_says
    assert phrase == f"refers to the Python object {module}.{name}"


def test_whole_file_formats_torch_refuses_are_named(tmp_path):
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), scripted)
    assert one_line(read_checkpoint, scripted).startswith(
        f"checkpoint {scripted} is a TorchScript archive (torch.jit.save: code, not weights){REFUSES}.")
    legacy_tar = tmp_path / "legacy.tar"
    with tarfile.open(legacy_tar, "w") as tar:
        tar.add(scripted, arcname="storages")
    assert one_line(read_checkpoint, legacy_tar).startswith(f"checkpoint {legacy_tar} is in torch's legacy .tar "
                                                            f"format{REFUSES}.")


def test_zoo_eval_detector_weights_payload_is_one_line(tmp_path, capsys):
    """`--detector-weights` is loaded after the clips are indexed: the refusal there is one line too."""
    marker = tmp_path / "MARKER"
    weights = tmp_path / "shapes_net.pt"
    torch.save(ShellPayload(marker), weights)
    clips = tmp_path / "clips"
    assert main(["data", "synth", "--out", str(clips), "--num", "4", "--frames", "16", "--resolution", "32"]) == 0
    capsys.readouterr()
    argv = ["eval", "--metric", "fvd_shapes", "--fake-dir", str(clips), "--real-dir", str(clips), "--num-samples", "4",
            "--num-real", "4", "--detector-weights", str(weights), "--no-leaderboard"]
    assert main(argv) == 2
    err = [line for line in printed_lines(capsys.readouterr().err) if line.startswith("zoo eval")]  # past the bars
    assert err == [f"zoo eval: error: shapes_net weights {weights} refers to the Python object posix.system{REFUSES}; "
                   "use the official file (`zoo weights fetch`) or one you converted yourself"]
    assert not marker.exists()


def test_zoo_eval_i3d_weights_raw_pickle_payload_names_the_global(tmp_path, capsys):
    """A raw pickle (not an archive) handed to the I3D detector is named as the payload it is, not as a truncated
    file: the archive check must not hide the loader's refusal."""
    marker = tmp_path / "MARKER"
    weights = tmp_path / "raw_i3d.pt"
    weights.write_bytes(pickle.dumps(ShellPayload(marker), protocol=2))
    clips = tmp_path / "clips"
    assert main(["data", "synth", "--out", str(clips), "--num", "4", "--frames", "16", "--resolution", "32"]) == 0
    capsys.readouterr()
    argv = ["eval", "--metric", "fvd", "--fake-dir", str(clips), "--real-dir", str(clips), "--num-samples", "4",
            "--num-real", "4", "--detector-weights", str(weights), "--no-leaderboard"]
    assert main(argv) == 2
    (err,) = [line for line in printed_lines(capsys.readouterr().err) if line.startswith("zoo eval")]
    assert err.startswith(f"zoo eval: error: --detector-weights {weights} cannot be used as i3d"), err
    assert "posix.system" in err and "not a PyTorch or NumPy archive" not in err, err
    assert not marker.exists()
