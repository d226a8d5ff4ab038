"""`leaderboard.csv`: one row per measured number with its full provenance; locked appends; rendering.

Rows say what was measured and how (DESIGN.md): model, dataset, split, protocol preset and fingerprint, metric,
value, interval, sample counts, detector with its weights' checksum, checkpoint checksum, config hash, seed, training
steps, code version, date. Appends hold a file lock (`filelock`) and write whole rows in one call, so concurrent
writers never lose or interleave rows. A last row cut short (a writer killed mid-append) is moved to a side file
`<leaderboard>.partial` by the next append, which then proceeds; complete rows are never rewritten or lost. Any other
malformed line (wrong field count, a non-numeric value) is reported with its line number and the file left untouched.
If rows cannot be appended at all, `append_or_set_aside` writes them to a new file beside the leaderboard.

`zoo leaderboard --format md|html|csv` renders one table per (dataset, metric) with the papers' numbers from
`experiments/*/<dataset>.yaml` (`reference:` lists) side by side, marking which are comparable: same preset, the
preset's sample counts, and detector weights verified against the weights table (`detector_verified` is `True`;
rows made with weights only pinned locally on first use say `pinned locally` and are not comparable).
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml
from filelock import FileLock

from zoo.config import EXPERIMENTS_DIR
from zoo.errors import ZooError

COLUMNS = (
    "date", "model", "dataset", "split", "preset", "fingerprint", "metric", "value", "interval_low", "interval_high",
    "num_real", "num_fake", "detector", "detector_weights", "detector_sha256", "detector_verified",
    "checkpoint_sha256", "config_hash", "seed", "training_steps", "code_version", "protocol", "extra", "samples",
)


def make_row(result, request, run: dict, code_version: str) -> dict:
    """A leaderboard row from an `EvalResult`, the `EvalRequest` and the checkpoint record."""
    from zoo.config import stable_hash

    experiment = run.get("experiment") or {}
    data = experiment.get("data") or {}
    model = run.get("model_name") or (f"dir:{Path(request.fake_dir).name}" if request.fake_dir else "")
    config_hash = ""
    if experiment:
        config_hash = stable_hash({k: experiment.get(k) for k in ("model_name", "model", "data", "train")})
    extra = {k: v for k, v in result.values.items() if k not in (result.metric, "_samples")}
    dataset = "folder" if request.real_dir else request.data or data.get("name", "")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model or "",
        "dataset": dataset,
        "split": data.get("split", "") if not request.real_dir else "",
        "preset": result.preset.name,
        "fingerprint": result.fingerprint,
        "metric": result.metric,
        "value": repr(float(result.values[result.metric])),
        "interval_low": repr(result.interval[0]) if result.interval else "",
        "interval_high": repr(result.interval[1]) if result.interval else "",
        "num_real": result.num_real,
        "num_fake": result.num_fake,
        "detector": result.detector["detector"],
        "detector_weights": result.detector["weights"],
        "detector_sha256": result.detector["sha256"],
        "detector_verified": _verified_column(result.detector),
        "checkpoint_sha256": run.get("sha256", ""),
        "config_hash": config_hash,
        "seed": (experiment.get("train") or {}).get("seed", ""),
        "training_steps": run.get("iteration", ""),
        "code_version": code_version,
        "protocol": json.dumps({**result.preset.protocol(), "resolution": data.get("resolution"),
                                "eval_seed": request.seed, "detector": result.detector}, sort_keys=True),
        "extra": json.dumps(extra, sort_keys=True),
        "samples": "",
    }


def _verified_column(detector: dict) -> str:
    """`True` only for weights whose SHA-256 equals the table's; `pinned locally` for first-use pins; else `False`."""
    trust = detector.get("trust") or ("verified" if detector.get("verified") else "unverified")
    return {"verified": "True", "pinned locally": "pinned locally"}.get(trust, "False")


def detector_trust(row: dict) -> str:
    """`verified`, `pinned locally` or `unverified`, from a row's `detector_verified` and protocol record.

    Rows written before trust levels were separated say `True` without a `trust` in their protocol record: their
    weights were at best pinned on first use (the table held no checksum), so they count as pinned locally.
    """
    value = str(row.get("detector_verified", ""))
    if value == "pinned locally":
        return "pinned locally"
    if value != "True":
        return "unverified"
    try:
        detector = json.loads(row.get("protocol") or "{}").get("detector") or {}
    except (ValueError, AttributeError):
        detector = {}
    return "verified" if detector.get("trust") == "verified" else "pinned locally"


def _format(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="raise")
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in COLUMNS})
    return buf.getvalue()


def _check_header(path: Path, text_start: str) -> None:
    header = text_start.splitlines()[0] if text_start else ""
    if header != ",".join(COLUMNS):
        raise ZooError(f"{path} is not a video-zoo leaderboard (line 1 is {header[:60]!r}); it was left untouched; "
                       "move it aside or pass --leaderboard OTHER.csv")


def _set_aside_partial(path: Path) -> Path | None:
    """If `path` ends in a line without newline (a writer killed mid-append), move that line to `<path>.partial`
    (appended, fsynced) and cut it from `path`; return the side file, or None when the file ends cleanly.
    Call with the lock held."""
    with open(path, "rb") as f:
        data = f.read()
    if not data or data.endswith(b"\n"):
        return None
    cut = data.rfind(b"\n") + 1  # 0 when even the header was cut short
    side = path.with_name(path.name + ".partial")
    with open(side, "ab") as f:
        f.write(data[cut:] + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.truncate(path, cut)
    return side


def append_rows(path: str | Path, rows: list[dict]) -> Path | None:
    """Append `rows` atomically under a file lock (creating the file with its header).

    Returns:
        The side file a partial last row was moved to (reported on stderr), or None.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=120):
        side = _set_aside_partial(path) if path.is_file() else None
        if side is not None:
            print(f"zoo: {path} ended in a partial row (an interrupted write); moved it to {side}, complete rows kept",
                  file=sys.stderr)
        exists = path.is_file() and path.stat().st_size > 0
        if exists:
            with open(path, "rb") as f:
                head = f.read(4096).decode("utf-8", "replace")
            _check_header(path, head)
        text = ("" if exists else ",".join(COLUMNS) + "\n") + _format(rows)
        with open(path, "a", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return side


def append_or_set_aside(path: str | Path, rows: list[dict]) -> str:
    """Append `rows` to the leaderboard, or, when that fails, write them to a new CSV beside it (else in the current
    folder) so a computed result is never lost. Returns what happened, for the user (one line)."""
    try:
        append_rows(path, rows)
        return f"appended {len(rows)} row(s) to {path}"
    except (ZooError, OSError, TimeoutError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"{Path(path).stem}.unsaved-{stamp}-{os.getpid()}.csv"
    for folder in (Path(path).resolve().parent, Path.cwd()):
        target = folder / name
        try:
            with open(target, "x", newline="") as f:
                f.write(",".join(COLUMNS) + "\n" + _format(rows))
            return (f"could not append to {path} ({reason}); the {len(rows)} row(s) were written to {target}: "
                    "append them by hand once the leaderboard is fixed")
        except OSError:
            continue
    raise ZooError(f"could not append to {path} ({reason}) nor write the rows beside it; the results are printed above")


_INTEGER_COLUMNS = ("num_real", "num_fake")
_NUMBER_COLUMNS = ("value", "interval_low", "interval_high")


def _check_numbers(path: Path, line: int, row: dict) -> None:
    for column in _NUMBER_COLUMNS + _INTEGER_COLUMNS:
        text = row[column]
        if text == "" and column != "value":
            continue
        try:
            number = int(text) if column in _INTEGER_COLUMNS else float(text)
        except ValueError:
            number = None
        if number is None or (column in _INTEGER_COLUMNS and number < 0):
            kind = "a non-negative integer" if column in _INTEGER_COLUMNS else "a number"
            raise ZooError(f"{path} line {line}: {column} is {text[:40]!r}, not {kind}; fix or remove that line "
                           "(the file was left untouched)")


def read_rows(path: str | Path) -> list[dict]:
    """All complete rows; raises `ZooError` naming the first malformed line. A last line cut short by an
    interrupted write is skipped with a note on stderr (the next append sets it aside)."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"leaderboard {path} does not exist; `zoo eval` creates it")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ZooError(f"{path} line {line} is not UTF-8 text; the file was left untouched") from None
    _check_header(path, text)
    if not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        print(f"zoo: {path} line {text.count(chr(10)) + 1} is a partial row (an interrupted write); ignored",
              file=sys.stderr)
        text = text[:cut]
    reader = csv.reader(io.StringIO(text))
    next(reader)
    rows = []
    for fields in reader:
        if len(fields) != len(COLUMNS):
            raise ZooError(f"{path} line {reader.line_num} has {len(fields)} fields, expected {len(COLUMNS)}; "
                           "the file was left untouched")
        row = dict(zip(COLUMNS, fields))
        _check_numbers(path, reader.line_num, row)
        rows.append(row)
    return rows


# -- rendering ----------------------------------------------------------------------------------------------------


def paper_references(dataset: str) -> list[dict]:
    """The `reference:` entries of every `experiments/<model>/<dataset>.yaml`, each with its `model` added."""
    out = []
    for path in sorted(EXPERIMENTS_DIR.glob(f"*/{dataset}.yaml")):
        for ref in (yaml.safe_load(path.read_text()) or {}).get("reference") or []:
            out.append({**ref, "model": path.parent.name})
    return out


def comparable(row: dict) -> tuple[bool, str]:
    """Whether a zoo row follows its preset exactly (sample counts, detector weights verified against the table);
    every reason when not."""
    from zoo.metrics.presets import PRESETS

    preset = PRESETS.get(row["preset"])
    if preset is None:
        return False, f"unknown preset {row['preset']}"
    reasons = []
    trust = detector_trust(row)
    if trust == "pinned locally":
        reasons.append("detector weights pinned locally (first-use checksum), not verified against the table")
    elif trust != "verified":
        reasons.append("unverified detector weights")
    if int(row["num_fake"]) != preset.num_fake or (preset.num_real and int(row["num_real"]) != preset.num_real):
        reasons.append(f"N={row['num_real']}/{row['num_fake']}, preset wants {preset.num_real}/{preset.num_fake}")
    return (not reasons), "; ".join(reasons) or "yes"


def _tables(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """`(dataset, metric)` -> display records (zoo rows then paper references)."""
    tables: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        ok, why = comparable(row)
        low, high = row["interval_low"], row["interval_high"]
        interval = f"[{float(low):.4g}, {float(high):.4g}]" if low and high else ""
        tables.setdefault((row["dataset"], row["metric"]), []).append({
            "model": row["model"], "value": f"{float(row['value']):.4g}", "interval": interval,
            "protocol": row["preset"], "n": f"{row['num_real']}/{row['num_fake']}", "steps": row["training_steps"],
            "source": f"zoo {row['code_version']} {row['date'][:10]}", "comparable": why if not ok else "yes",
            "samples": row["samples"],
        })
    for dataset, metric in list(tables):
        measured = {r["protocol"] for r in tables[(dataset, metric)]}
        for ref in paper_references(dataset):
            if ref.get("metric") != metric:
                continue
            value = f"{ref['value']}" + (f" ± {ref['std']}" if "std" in ref else "")
            same = ref.get("protocol") in measured
            tables[(dataset, metric)].append({
                "model": f"{ref['model']} (paper)", "value": value, "interval": "",
                "protocol": ref.get("protocol", "?"),
                "n": "", "steps": "", "source": ref.get("source", ""),
                "comparable": "same protocol" if same else "different protocol: not comparable", "samples": "",
            })
    return tables


FIELDS = ("model", "value", "interval", "protocol", "n", "steps", "comparable", "source")


def render(rows: list[dict], fmt: str = "md") -> str:
    if fmt == "csv":
        return ",".join(COLUMNS) + "\n" + _format(rows)
    tables = _tables(rows)
    if fmt == "md":
        out = []
        for (dataset, metric), records in sorted(tables.items()):
            out.append(f"### {dataset} · {metric}\n")
            out.append("| " + " | ".join(FIELDS) + " |")
            out.append("|" + "---|" * len(FIELDS))
            out += ["| " + " | ".join(str(r[f]).replace("|", "/") for f in FIELDS) + " |" for r in records]
            out.append("")
        return "\n".join(out)
    if fmt == "html":
        parts = ["<!doctype html><meta charset='utf-8'><title>video-zoo leaderboard</title>",
                 "<style>td,th{padding:4px 8px;border-bottom:1px solid #ddd}.no{color:#999}</style>"]
        for (dataset, metric), records in sorted(tables.items()):
            parts.append(f"<h3>{html.escape(dataset)} · {html.escape(metric)}</h3><table><tr>"
                         + "".join(f"<th>{f}</th>" for f in FIELDS + ("samples",)) + "</tr>")
            for r in records:
                cls = "" if r["comparable"] in ("yes", "same protocol") else " class='no'"
                gif = f"<img src='{html.escape(r['samples'])}' height='96'>" if r["samples"] else ""
                parts.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(r[f]))}</td>" for f in FIELDS)
                             + f"<td>{gif}</td></tr>")
            parts.append("</table>")
        return "\n".join(parts) + "\n"
    raise ZooError(f"unknown format {fmt!r}; valid: md, html, csv")


def add_leaderboard_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="render leaderboard.csv with the papers' numbers side by side")
    p.add_argument("--file", default="leaderboard.csv", help="the CSV written by `zoo eval`")
    p.add_argument("--format", default="md", choices=["md", "html", "csv"])
    p.add_argument("--out", help="write here instead of stdout")
    p.set_defaults(run=_run_leaderboard)


def _run_leaderboard(args) -> None:
    text = render(read_rows(args.file), args.format)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
