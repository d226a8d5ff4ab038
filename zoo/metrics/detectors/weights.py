"""The one table of detector weights: where each file comes from, its checksum, the cache, `zoo weights fetch`.

Files live in `$ZOO_CACHE/weights/` (default `~/.cache/zoo/weights/`) and are downloaded on first use, like
torch-fidelity does. No upstream project publishes a SHA-256 for these files, so a checksum is pinned in `WEIGHTS`
where we know one; otherwise the SHA-256 is recorded (in `sha256.json` next to the files) the first time a file
passes its structural check (it loads and has the expected tensors), and every later load must match the pinned or
recorded value. A mismatch is an error, never a silent re-download. Without network and without a cached file, the
error names the file, its URL and the command that fetches it; weights are never random.

Trust is one of three levels (`ResolvedWeights.trust`), carried into every result and leaderboard row:
* `verified`: the file's SHA-256 equals the checksum pinned in `WEIGHTS` (the official file, whoever placed it);
* `pinned locally`: it equals the checksum this cache recorded on first use (trust on first use: the file loads and
  has the right tensors, and has not changed since, but nothing says it is the official file);
* `unverified`: a `--detector-weights` file matching neither.
Only `verified` rows are called comparable by `zoo leaderboard`.

`--detector-weights PATH` uses another file (a copy on a cluster without network, a converted file): its SHA-256 goes
into every result with its trust level.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from zoo.errors import ZooError


@dataclass(frozen=True)
class WeightsFile:
    name: str  # key in WEIGHTS, used by `zoo weights fetch NAME` and `--detector`
    filename: str  # file name in the cache
    urls: tuple[str, ...]  # tried in order
    sha256: str | None  # pinned checksum; None = recorded on first verified download
    format: str  # torchscript | state_dict | chainer_npz | mean_npz | packaged
    description: str
    retrain: str = ""  # packaged files: the command that regenerates the file (default `zoo weights train NAME`)


WEIGHTS: dict[str, WeightsFile] = {
    w.name: w
    for w in (
        WeightsFile(
            "i3d_torchscript", "i3d_torchscript.pt",
            ("https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",), None, "torchscript",
            "StyleGAN-V's TorchScript port of TF-Hub i3d-kinetics-400/1 (FVD, StyleGAN-V presets)",
        ),
        WeightsFile(
            "i3d_pretrained_400", "i3d_pretrained_400.pt",
            ("https://huggingface.co/spaces/LanguageBind/Open-Sora-Plan-v1.0.0/resolve/"
             "810fa8c4bdb3a4c8eec9bd57375c29bde6fb46de/opensora/eval/fvd/videogpt/i3d_pretrained_400.pt",
             "https://drive.google.com/uc?export=download&id=1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT"),
            None, "state_dict",
            "VideoGPT's conversion of TF-Hub i3d-kinetics-400/1, pytorch-i3d naming (run with BN eps 1e-3 here)",
        ),
        WeightsFile(
            "c3d_ucf101_torchscript", "c3d_ucf101.pt",
            ("https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1",), None, "torchscript",
            "StyleGAN-V's TorchScript port of TGANv2's UCF-101 C3D (isv2048_ucf)",
        ),
        WeightsFile(
            "c3d_ucf101_npz", "conv3d_deepnetA_ucf.npz",
            ("https://github.com/rezoo/tgan2/releases/download/v1.0/conv3d_deepnetA_ucf.npz",), None, "chainer_npz",
            "TGANv2's Chainer export of the UCF-101 fine-tuned C3D (is2048_ucf)",
        ),
        WeightsFile(
            "c3d_mean", "mean2.npz",
            ("https://github.com/rezoo/tgan2/releases/download/v1.0/mean2.npz",), None, "mean_npz",
            "Sports-1M mean clip subtracted before the C3D (with c3d_ucf101_npz)",
        ),
        WeightsFile(  # ships in the package (zoo/metrics/detectors/); retrain: zoo weights train shapes_net
            "shapes_net", "shapes_net.pt", (),
            "25acf64ea9be2e05a1ce7fef3be8f9ee124a85ebd72fab98a4859eb7df8251ba", "packaged",
            "the in-repo shapes detector (fvd_shapes, kvd_shapes, is_shapes, acd_shapes, prdc_shapes)",
        ),
        WeightsFile(  # ships in the package; retrain: python tools/train_shapes_seg.py --seed 0
            "shapes_seg", "shapes_seg.pt", (),
            "4c79834899af6230f02df7465ae307fca2761e040a9f6dc935d13f64d4eaee07", "packaged",
            "the in-repo shapes segmenter (mask_iou of conditional synthesis)",
            retrain="python tools/train_shapes_seg.py --seed 0",
        ),
    )
}


VERIFIED, PINNED, UNVERIFIED = "verified", "pinned locally", "unverified"
TRUST_ORDER = (UNVERIFIED, PINNED, VERIFIED)


@dataclass(frozen=True)
class ResolvedWeights:
    name: str
    path: Path
    sha256: str
    trust: str  # verified (table checksum) | pinned locally (first-use checksum of this cache) | unverified

    @property
    def verified(self) -> bool:
        """The SHA-256 equals the checksum pinned in `WEIGHTS`: the official file."""
        return self.trust == VERIFIED


def weakest(*levels: str) -> str:
    """The trust of a result made with several files (C3D weights and its mean clip)."""
    return min(levels, key=TRUST_ORDER.index)


def cache_dir() -> Path:
    """`$ZOO_CACHE` (default `~/.cache/zoo`)."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo")


def weights_dir() -> Path:
    return cache_dir() / "weights"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _records_path() -> Path:
    return weights_dir() / "sha256.json"


def recorded_sha256(entry: WeightsFile) -> str | None:
    """The pinned checksum, else the one recorded at the first use of a structurally valid file, else None."""
    if entry.sha256:
        return entry.sha256
    return locally_pinned_sha256(entry)


def trust_of(entry: WeightsFile, sha: str) -> str:
    """`verified` when `sha` is the table's checksum, `pinned locally` when it is this cache's record, else
    `unverified`."""
    if entry.sha256 and sha == entry.sha256:
        return VERIFIED
    if sha == locally_pinned_sha256(entry):
        return PINNED
    return UNVERIFIED


def locally_pinned_sha256(entry: WeightsFile) -> str | None:
    """The checksum recorded in this cache's `sha256.json` on first use (trust on first use), or None."""
    path = _records_path()
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get(entry.filename)
    except json.JSONDecodeError:
        raise ZooError(f"{path} is corrupt; delete it and re-fetch the weights with `zoo weights fetch`") from None


def _record(entry: WeightsFile, sha: str) -> None:
    path = _records_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        records = json.loads(path.read_text()) if path.is_file() else {}
        records[entry.filename] = sha
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
        tmp.replace(path)


def load_network(net, path: Path, name: str, retrain: str):
    """`net` (an `nn.Module`) in eval mode with the state dict of the weights file `path`, loaded with
    `weights_only=True`; a missing file or a state dict of another network is a one-line `ZooError` (`retrain`: the
    command that rebuilds the file)."""
    if not path.is_file():
        raise ZooError(f"{name} weights {path} do not exist; retrain them with `{retrain}`")
    state = load_weights_file(path, f"{name} weights")
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ZooError(f"{path} is not a {name} state dict: {str(e).splitlines()[0]}") from None
    return net.eval()


def load_weights_file(path: Path, what: str):
    """`torch.load(path, weights_only=True)` on CPU: a file that refers to Python objects (or is otherwise refused)
    or cannot be read is a one-line `ZooError` naming `what` and the reason, never torch's advice to retry with
    `weights_only=False`."""
    import warnings

    import torch

    from zoo.safe_load import refusal, torch_reason

    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - translated to one line; torch's own messages are paragraphs
        refused = refusal(e, path)
        if refused:
            raise ZooError(f"{what} {path} {refused}, which safe (weights-only) loading refuses: loading it could run "
                           "code; use the official file (`zoo weights fetch`) or one you converted yourself") from None
        raise ZooError(f"cannot read {what} {path}: {torch_reason(e)}") from None


def check_structure(entry: WeightsFile, path: Path) -> None:
    """Raise `ZooError` unless `path` loads as the expected kind of file (the check before a checksum is recorded)."""
    from zoo.metrics.detectors import load_i3d

    try:
        if entry.format == "torchscript":
            import torch

            torch.jit.load(str(path), map_location="cpu")
        elif entry.format == "state_dict":
            load_i3d(path)
        elif entry.format == "chainer_npz":
            import numpy as np

            with np.load(path) as npz:
                if not any(k.strip("/").endswith("fc8/W") for k in npz.files):
                    raise ZooError(f"{path} has no fc8/W array")
        elif entry.format == "mean_npz":
            import numpy as np

            with np.load(path) as npz:
                if "mean" not in npz.files:
                    raise ZooError(f"{path} has no 'mean' array")
    except ZooError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to load means the file is not what the table says
        raise ZooError(f"{path} is not a valid {entry.format} file for {entry.name}: {e}") from None


def _missing_message(entry: WeightsFile, path: Path, reason: str) -> str:
    flag = "--detector-mean" if entry.name == "c3d_mean" else "--detector-weights"
    return (f"detector weights {entry.filename} are not in {path.parent} and could not be downloaded ({reason}); "
            f"run `zoo weights fetch {entry.name}` where there is network (URL: {entry.urls[0]}), "
            f"copy the file to {path}, or pass {flag} PATH")


def download(entry: WeightsFile, timeout: float = 60.0) -> Path:
    """Download `entry` into the cache, check its checksum and structure, record its SHA-256; return the path."""
    path = weights_dir() / entry.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("ZOO_OFFLINE"):
        raise ZooError(_missing_message(entry, path, "ZOO_OFFLINE is set"))
    errors = []
    for url in entry.urls:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=entry.filename + ".", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: {e}")
            continue
        sha = sha256_of(tmp)
        expected = recorded_sha256(entry)
        if expected and sha != expected:
            tmp.unlink(missing_ok=True)
            raise ZooError(f"download of {entry.filename} from {url} has SHA-256 {sha}, expected {expected}; "
                           "the file changed upstream or the transfer was corrupted")
        try:
            check_structure(entry, tmp)
        except ZooError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(path)
        if not expected:
            _record(entry, sha)
        return path
    raise ZooError(_missing_message(entry, path, "; ".join(errors) or "no URL"))


def resolve(name: str, override: str | Path | None = None, fetch: bool = True) -> ResolvedWeights:
    """Find (downloading on first use) the weights file `name` and check its checksum.

    Args:
        name: key of `WEIGHTS`.
        override: a file to use instead (`--detector-weights`); must exist.
        fetch: download when not cached.

    Returns:
        The path, its SHA-256 and its trust level (verified only when it equals the table's checksum).
    """
    if name not in WEIGHTS:
        raise ZooError(f"unknown detector weights {name!r}; valid: {', '.join(WEIGHTS)}")
    entry = WEIGHTS[name]
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise ZooError(f"--detector-weights {path} does not exist")
        sha = sha256_of(path)
        return ResolvedWeights(name, path, sha, trust_of(entry, sha))
    path = weights_dir() / entry.filename
    if entry.format == "packaged":  # inside the package, never downloaded; the pinned checksum is checked every load
        path = Path(__file__).with_name(entry.filename)
        if not path.is_file():
            raise ZooError(f"{path} is missing from the installation; reinstall video-zoo or retrain it with "
                           f"`{entry.retrain or f'zoo weights train {name}'}`")
        sha = sha256_of(path)
        if sha != entry.sha256:
            raise ZooError(f"{path} has SHA-256 {sha} but {name} must be {entry.sha256}: the file is corrupt or "
                           f"replaced; reinstall video-zoo (or pass --detector-weights PATH for a retrained file)")
        return ResolvedWeights(name, path, sha, VERIFIED)
    if not path.is_file():
        if not fetch:
            raise ZooError(_missing_message(entry, path, "not fetched"))
        download(entry)
    sha = sha256_of(path)
    expected = recorded_sha256(entry)
    if expected is None:  # placed by hand: check it is the right kind of file, then pin it
        check_structure(entry, path)
        _record(entry, sha)
    elif sha != expected:
        raise ZooError(f"{path} has SHA-256 {sha} but {name} must be {expected}: the file is corrupt or replaced; "
                       f"delete it and run `zoo weights fetch {name}`")
    return ResolvedWeights(name, path, sha, trust_of(entry, sha))


# -- `zoo weights` ------------------------------------------------------------------------------------------------


def add_weights_parser(sub) -> None:
    p = sub.add_parser("weights", help="detector weights: list, fetch ahead of time (for nodes without network)")
    tools = p.add_subparsers(dest="tool", required=True)
    fetch = tools.add_parser("fetch", help="download and checksum detector weights into $ZOO_CACHE/weights")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(WEIGHTS)}, or 'all'")
    fetch.set_defaults(run=_run_fetch)
    show = tools.add_parser("list", help="the weights table and what is cached")
    show.set_defaults(run=_run_list)
    train = tools.add_parser("train", help="retrain an in-repo detector (shapes_net) from a seed")
    train.add_argument("name", choices=["shapes_net"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--steps", type=int, default=3000)
    train.add_argument("--heldout", type=int, default=500, metavar="N",
                       help="held-out clips scored after training (a multiple of 50)")
    where = train.add_mutually_exclusive_group()
    where.add_argument("--out", help="weights file (default: $ZOO_CACHE/weights/shapes_net.pt)")
    where.add_argument("--install", action="store_true",
                       help="replace the packaged file inside the installation (every shapes metric checks it against "
                            "the pinned SHA-256: a retrain that differs makes them refuse it)")
    train.set_defaults(run=_run_train)


def _run_train(args) -> None:
    """Retrain into the cache by default: overwriting the packaged file would make every shapes metric fail its
    checksum unless the retrain reproduces it byte for byte."""
    from zoo.metrics.detectors import shapes_net

    if args.steps < 1:
        raise ZooError(f"--steps must be at least 1, got {args.steps}")
    if args.heldout < 50 or args.heldout % 50:
        raise ZooError(f"--heldout must be a multiple of 50 (clips are scored in batches of 50), got {args.heldout}")
    entry = WEIGHTS["shapes_net"]
    out = Path(shapes_net.WEIGHTS_FILE if args.install else args.out or weights_dir() / entry.filename)
    if out.is_dir():
        raise ZooError(f"--out {out} is a folder; name the weights file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    shapes_net.train_shapes_net(seed=args.seed, steps=args.steps, out=out, heldout=args.heldout)
    sha = sha256_of(out)
    if args.install:
        state = ("it equals the pinned checksum" if sha == entry.sha256 else
                 f"it differs from the pinned {entry.sha256}, so shapes metrics now refuse it until weights.py pins it "
                 "(or the installation is restored)")
        print(f"installed {out} over the packaged shapes_net weights: SHA-256 {sha}; {state}")
    else:
        print(f"wrote {out} (SHA-256 {sha}); the packaged weights are unchanged. Score with it: zoo eval ... "
              f"--detector-weights {out}; replace the packaged file: zoo weights train shapes_net --install")


def _run_fetch(args) -> None:
    names = [n for n in WEIGHTS if WEIGHTS[n].urls] if "all" in args.names else args.names  # packaged: nothing to fetch
    failed = []
    for name in names:  # every file is tried: one unreachable URL does not hide the state of the others
        try:
            got = resolve(name)
        except ZooError as e:
            failed.append(name)
            print(f"{name}: FAILED: {e}")
            continue
        print(f"{name}: {got.path} sha256={got.sha256} ({got.trust})")
    print(f"fetched {len(names) - len(failed)} of {len(names)} weights files")
    if failed:
        raise ZooError(f"could not fetch {', '.join(failed)} (reasons above)")


def _run_list(args) -> None:
    for entry in WEIGHTS.values():
        path = weights_dir() / entry.filename
        state = "cached" if path.is_file() else "not cached"
        if entry.format == "packaged":
            print(f"{entry.name:<24} {'packaged':<11} {entry.description}\n{'':<24} {Path(__file__).parent}")
            continue
        print(f"{entry.name:<24} {state:<11} {entry.description}\n{'':<24} {entry.urls[0]}")
