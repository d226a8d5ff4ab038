"""`leaderboard.csv`: one row per measured number with its full provenance; locked appends; rendering.

Rows say what was measured and how (DESIGN.md): model, dataset, split, protocol preset and fingerprint, metric,
value, interval, sample counts, detector with its weights' checksum, checkpoint checksum, config hash, seed, training
steps, code version, date. Appends hold a file lock (`filelock`) and write whole rows in one call, so concurrent
writers never lose or interleave rows. A last row cut short (a writer killed mid-append) is moved to a side file
`<leaderboard>.partial` by the next append, which then proceeds; complete rows are never rewritten or lost. Any other
malformed line (wrong field count, a non-numeric value) is reported with its line number and the file left untouched.
If rows cannot be appended at all, `append_or_set_aside` writes them to a new file beside the leaderboard and raises
`RowsSetAside` (a `ZooError`: `zoo eval` exits 2 naming that file). No field may exceed `FIELD_LIMIT` characters
(the CSV reader's limit): longer fields are refused before anything is written, and a file holding one is reported
with its line number.

`zoo leaderboard --format md|html|csv` renders one table per (dataset, metric) with the papers' numbers from
`experiments/*/<dataset>.yaml` (`reference:` lists) side by side, marking which are comparable: same preset, the
preset's sample counts, and detector weights verified against the weights table (`detector_verified` is `True`;
rows made with weights only pinned locally on first use say `pinned locally` and are not comparable). Each table
says which values are better (`BETTER`, the rule `zoo bench` ranks by too) and lists the zoo rows best first, then
the real-versus-real floor rows `zoo bench` appends (model `real-vs-real`), then the papers' numbers. The HTML page
embeds the sample GIFs as data URIs, read only from the leaderboard's own `leaderboard_samples/` folder, so it works
wherever it is written; every field is escaped (HTML entities; Markdown link and table syntax too).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
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
FIELD_LIMIT = 131072  # characters per field: the csv module's default reader limit (csv.field_size_limit())
FLOOR_MODEL = "real-vs-real"  # the model of rows scoring one set of real clips against a disjoint one (zoo bench)


class RowsSetAside(ZooError):
    """The rows could not be appended and were written to `path` instead: a failure the exit status must show."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


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
        "split": result.values.get("heldout_split") or (data.get("split", "") if not request.real_dir else ""),
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
        "protocol": json.dumps({**result.preset.protocol(), "resolution": scored_resolution(request, data),
                                "eval_seed": request.seed, "detector": result.detector}, sort_keys=True),
        "extra": json.dumps(extra, sort_keys=True),
        "samples": "",
    }


def scored_resolution(request, data: dict) -> int:
    """The resolution the clips were scored at: `--resolution` where given, else the checkpoint's data config's (the
    same choice `zoo.evaluation.protocol.real_data_config` makes), else the data layer's default."""
    from zoo.config import DataConfig

    if request.resolution is not None:
        return request.resolution
    return data.get("resolution") or DataConfig().resolution


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
        fields = {k: row.get(k, "") for k in COLUMNS}
        _check_field_sizes(fields)
        writer.writerow(fields)
    return buf.getvalue()


def _check_field_sizes(fields: dict) -> None:
    """Refuse a field the reader could not read back (the CSV module's limit), before anything is written."""
    for column, value in fields.items():
        if len(str(value)) > FIELD_LIMIT:
            raise ZooError(f"leaderboard column {column} of model {str(fields['model'])[:40]!r} holds "
                           f"{len(str(value))} characters, over the {FIELD_LIMIT} a field may hold; nothing was "
                           "written")


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
    """Append `rows` to the leaderboard and return what happened, for the user (one line); when that fails, write
    them to a new CSV beside it (else in the current folder), so a computed result is never lost, and raise
    `RowsSetAside` naming that file, so the caller's exit status says the leaderboard did not get them."""
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
        except OSError:
            continue
        raise RowsSetAside(f"could not append to {path} ({reason}); the {len(rows)} row(s) were written to {target}: "
                           "append them by hand once the leaderboard is fixed", target)
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
    try:
        for fields in reader:
            if len(fields) != len(COLUMNS):
                raise ZooError(f"{path} line {reader.line_num} has {len(fields)} fields, expected {len(COLUMNS)}; "
                               "the file was left untouched")
            row = dict(zip(COLUMNS, fields))
            _check_numbers(path, reader.line_num, row)
            rows.append(row)
    except csv.Error as e:  # a field over the reader's limit (zoo never writes one), a NUL byte
        line = reader.line_num
        raise ZooError(f"{path} line {line} is not a readable CSV row ({e}); fix or remove that line (the file was "
                       "left untouched)") from None
    return rows


# -- rendering ----------------------------------------------------------------------------------------------------


def paper_references(dataset: str) -> list[dict]:
    """The `reference:` entries of every `experiments/<model>/<dataset>.yaml`, each with its `model`: the entry's
    own where it names one (a paper's number for another model, e.g. StyleGAN-V's retrained baselines), else the
    folder's."""
    out = []
    for path in sorted(EXPERIMENTS_DIR.glob(f"*/{dataset}.yaml")):
        for ref in (yaml.safe_load(path.read_text()) or {}).get("reference") or []:
            out.append({"model": path.parent.name, **ref})
    return out


def row_resolution(row: dict) -> int | None:
    """The clip resolution (pixels a side) a row was scored at, from its protocol record; None where it says none."""
    try:
        value = json.loads(row.get("protocol") or "{}").get("resolution")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def protocol_label(preset: str, resolution: int | None) -> str:
    """A preset at one resolution: the unit rows are ranked within and compared with papers by. The presets fix
    counts, clip length and detector but not the resolution (the dataset's), and FVD at 64^2 and at 256^2 are not
    the same measurement."""
    return f"{preset} @ {resolution}px" if resolution else preset


def comparable(row: dict) -> tuple[bool, str]:
    """Whether a zoo row follows its preset exactly (sample counts, detector weights verified against the table);
    every reason when not."""
    from zoo.metrics.presets import PRESETS

    preset = PRESETS.get(row["preset"])
    if preset is None:
        return False, f"unknown preset {row['preset']}"
    reasons = []  # every reason, not the first: fixing one should not reveal another
    trust = detector_trust(row)
    weights = row.get("detector_weights") or "?"
    if trust == "pinned locally":
        reasons.append(f"detector weights ({weights}) pinned locally (first-use checksum), not verified against the "
                       "table")
    elif trust != "verified":
        reasons.append(f"unverified detector weights ({weights})")
    if int(row["num_fake"]) != preset.num_fake or (preset.num_real and int(row["num_real"]) != preset.num_real):
        reasons.append(f"sample counts N={row['num_real']}/{row['num_fake']} (real/generated), preset wants "
                       f"{preset.num_real}/{preset.num_fake}")
    return (False, "; ".join(reasons)) if reasons else (True, "yes")


# -- which values are better: the one rule --------------------------------------------------------------------

# metric -> which of its values are better; "real": the closer to the real clips' own value (recorded beside the
# score, under TARGET[metric]) the better. The leaderboard page and the `zoo bench` report state and rank by this.
BETTER = {"fvd": "lower", "kvd": "lower", "bpd": "lower", "is": "higher", "prdc": "higher", "acd": "real",
          # conditional models, against their own targets
          "psnr": "higher", "ssim": "higher", "lpips": "lower", "warp_error": "lower", "mask_iou": "higher"}
TARGET = {"acd": "acd_real"}


def better_text(metric: str) -> str:
    """What `BETTER` says of `metric`, for a reader: 'lower is better', ..."""
    rule = BETTER.get(metric)
    if rule == "real":
        return f"closer to the real clips' value ({TARGET[metric]}) is better"
    return f"{rule} is better" if rule else "no ranking rule"


def rank_key(metric: str, value, secondary: dict) -> float | None:
    """How far from best `value` is under `BETTER` (smaller ranks first); None where it cannot be ranked: not a
    finite number, no finite real value to approach (`secondary[TARGET[metric]]`), or no rule for the metric."""
    rule, number = BETTER.get(metric), finite(value)
    if rule is None or number is None:
        return None
    if rule == "real":
        target = finite(secondary.get(TARGET[metric]))
        return None if target is None else abs(number - target)
    return number if rule == "lower" else -number


def finite(value) -> float | None:
    """`value` as a finite float, else None (text, None, NaN, infinities, booleans)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- images a page embeds -------------------------------------------------------------------------------------

MAX_EMBED_BYTES = 8 * 2**20  # per image; a larger file is left out of a page, with the reason
_IMAGE_MAGIC = {b"GIF87a": "image/gif", b"GIF89a": "image/gif", b"\x89PNG\r\n\x1a\n": "image/png"}
SAMPLES_DIR = "leaderboard_samples"  # beside the leaderboard CSV: the GIFs `zoo eval` writes and the page embeds


def image_data_uri(path: Path, inside: Path) -> tuple[str | None, str]:
    """`(data URI, "")` of the GIF or PNG file at `path` when, every symlink resolved, it lies inside the folder
    `inside` and holds at most `MAX_EMBED_BYTES`; else `(None, why not)`. Pages read files named by their inputs
    (a CSV field, `state.json`) only through this."""
    try:
        real, folder = Path(path).resolve(), Path(inside).resolve()
        if not real.is_relative_to(folder):
            return None, f"outside {inside}"
        if not real.is_file():
            return None, "no such file"
        with open(real, "rb") as f:
            data = f.read(MAX_EMBED_BYTES + 1)
    except (OSError, ValueError, RuntimeError) as e:  # ValueError: a NUL in the name; RuntimeError: a symlink loop
        return None, f"unreadable ({type(e).__name__})"
    if len(data) > MAX_EMBED_BYTES:
        return None, f"larger than {MAX_EMBED_BYTES // 2**20} MiB"
    mime = next((m for magic, m in _IMAGE_MAGIC.items() if data.startswith(magic)), None)
    if mime is None:
        return None, "not a GIF or PNG image"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", ""


# -- rendering ------------------------------------------------------------------------------------------------


def _secondary(row: dict) -> dict:
    """A row's `extra` record (secondary values such as `acd_real`); {} where it is not a JSON object."""
    try:
        extra = json.loads(row.get("extra") or "{}")
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def _value_text(row: dict, secondary: dict) -> str:
    text = f"{float(row['value']):.4g}"
    target = finite(secondary.get(TARGET.get(row["metric"], "")))
    return text + (f" (real {target:.4g})" if target is not None else "")


def _tables(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """`(dataset, metric)` -> display records: the zoo's rows best first per protocol at each resolution
    (`protocol_label`, `rank_key`), the real-versus-real floor rows, then the papers' references."""
    tables: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        ok, why = comparable(row)
        low, high = row["interval_low"], row["interval_high"]
        interval = f"[{float(low):.4g}, {float(high):.4g}]" if low and high else ""
        secondary = _secondary(row)
        floor = row["model"] == FLOOR_MODEL
        tables.setdefault((row["dataset"], row["metric"]), []).append({
            "model": "real vs real (floor)" if floor else row["model"], "value": _value_text(row, secondary),
            "interval": interval, "protocol": protocol_label(row["preset"], row_resolution(row)),
            "n": f"{row['num_real']}/{row['num_fake']}",
            "steps": row["training_steps"], "source": f"zoo {row['code_version']} {row['date'][:10]}",
            "comparable": why if not ok else "yes", "samples": row["samples"], "floor": floor,
            "rank": rank_key(row["metric"], row["value"], secondary),
        })
    for records in tables.values():  # stable: equal ranks keep the file's order
        records.sort(key=lambda r: (r["floor"], r["protocol"], r["rank"] is None, r["rank"] or 0.0))
    for dataset, metric in list(tables):
        measured = {r["protocol"] for r in tables[(dataset, metric)]}
        for ref in paper_references(dataset):
            if ref.get("metric") != metric:
                continue
            value = f"{ref['value']}" + (f" ± {ref['std']}" if "std" in ref else "")
            label = protocol_label(ref.get("protocol", "?"), ref.get("resolution"))
            same = label in measured
            tables[(dataset, metric)].append({
                "model": f"{ref['model']} (paper)", "value": value, "interval": "",
                "protocol": label,
                "n": "", "steps": "", "source": ref.get("source", ""),
                "comparable": "same protocol" if same else "different protocol: not comparable", "samples": "",
                "floor": False, "rank": None,
            })
    return tables


FIELDS = ("model", "value", "interval", "protocol", "n", "steps", "comparable", "source")
ORDER_NOTE = ("the zoo's rows best first per protocol and resolution, then the real-vs-real floor (where measured), "
              "then the papers'")


def _md_text(value) -> str:
    """One Markdown table cell that renders as the text it holds: one line, HTML as entities, no links or images,
    no cell breaks."""
    text = html.escape(" ".join(str(value).split()), quote=False)
    for char in "\\|[]":
        text = text.replace(char, "\\" + char)
    return text


def _markdown(tables: dict) -> str:
    out = []
    for (dataset, metric), records in sorted(tables.items()):
        out.append(f"### {_md_text(dataset)} · {_md_text(metric)}\n")
        out.append(f"{_md_text(better_text(metric).capitalize())}; {ORDER_NOTE}.\n")
        out.append("| " + " | ".join(FIELDS) + " |")
        out.append("|" + "---|" * len(FIELDS))
        out += ["| " + " | ".join(_md_text(r[f]) for f in FIELDS) + " |" for r in records]
        out.append("")
    return "\n".join(out)


def _html(tables: dict, base: Path | None) -> str:
    esc = html.escape
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>video-zoo leaderboard</title>",
             "<style>td,th{padding:4px 8px;border-bottom:1px solid #ddd}.no{color:#999}tr.floor{background:#eef}"
             "img.samples{image-rendering:pixelated;height:192px}figure{display:inline-block}</style></head><body>"]
    figures: dict[str, tuple[int, str | None, str]] = {}  # samples path -> (number, data URI or None, why not)
    for (dataset, metric), records in sorted(tables.items()):
        parts.append(f"<h3>{esc(dataset)} · {esc(metric)}</h3><p>{esc(better_text(metric).capitalize())}; "
                     f"{esc(ORDER_NOTE)}.</p><table><tr>" + "".join(f"<th>{f}</th>" for f in FIELDS + ("samples",))
                     + "</tr>")
        for r in records:
            classes = ["floor"] * r["floor"] + ["no"] * (r["comparable"] not in ("yes", "same protocol"))
            cls = f" class='{' '.join(classes)}'" if classes else ""
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(str(r[f]))}</td>" for f in FIELDS)
                         + f"<td>{_samples_link(r['samples'], figures, base)}</td></tr>")
        parts.append("</table>")
    shown = [(number, uri, path) for path, (number, uri, _) in figures.items() if uri]
    if shown:
        parts.append("<h2>Samples</h2>")
        parts += [f"<figure id='samples-{n}'><img class='samples' alt='samples {n}' src='{uri}'>"
                  f"<figcaption>samples {n}: {esc(path)}</figcaption></figure>" for n, uri, path in shown]
    return "\n".join(parts) + "\n</body></html>\n"


def _samples_link(relative: str, figures: dict, base: Path | None) -> str:
    """A link to the row's sample grid, embedded once in the page's Samples section; or why it is not shown."""
    if not relative:
        return ""
    if relative not in figures:
        uri, why = (image_data_uri(base / relative, base / SAMPLES_DIR) if base is not None
                    else (None, "no leaderboard folder given"))
        figures[relative] = (len(figures) + 1, uri, why)
    number, uri, why = figures[relative]
    if uri is None:
        return f"<span class='no'>not shown: {html.escape(why)}</span>"
    return f"<a href='#samples-{number}'>samples {number}</a>"


def render(rows: list[dict], fmt: str = "md", base: str | Path | None = None) -> str:
    """The leaderboard as Markdown, a self-contained HTML page, or CSV. `base`: the folder the rows' `samples` paths
    are relative to (the leaderboard's); the page embeds only GIFs inside its `leaderboard_samples/`."""
    if fmt == "csv":
        return ",".join(COLUMNS) + "\n" + _format(rows)
    if fmt == "md":
        return _markdown(_tables(rows))
    if fmt == "html":
        return _html(_tables(rows), Path(base) if base is not None else None)
    raise ZooError(f"unknown format {fmt!r}; valid: md, html, csv")


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` by `text` through a temporary file in the same folder (a reader never sees half a file)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def add_leaderboard_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="render leaderboard.csv with the papers' numbers side by side")
    p.add_argument("--file", default=None,
                   help="the CSV written by `zoo eval` (default: runs/leaderboard.csv, or under $ZOO_HOME)")
    p.add_argument("--format", default="md", choices=["md", "html", "csv"])
    p.add_argument("--out", help="write here instead of stdout (an existing file only with --force)")
    p.add_argument("--force", action="store_true", help="let --out replace an existing file")
    p.set_defaults(run=_run_leaderboard)


def _check_out(out: Path, source: Path, force: bool) -> None:
    """Refuse an `--out` that is a folder, the leaderboard itself, or an existing file without `--force`."""
    if out.is_dir():
        raise ZooError(f"--out {out} is a folder; name a file in it, e.g. --out {out / 'leaderboard.html'}")
    if out.exists() and source.exists() and out.samefile(source):
        raise ZooError(f"--out {out} is the leaderboard being rendered; write the page to another file")
    if out.exists() and not force:
        raise ZooError(f"--out {out} already exists; pass --force to replace it")
    if not out.parent.is_dir():
        raise ZooError(f"--out {out}: the folder {out.parent} does not exist")


def _run_leaderboard(args) -> None:
    from zoo.paths import default_leaderboard

    source = Path(args.file or default_leaderboard())
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out(out, source, args.force)
    text = render(read_rows(source), args.format, base=source.parent)
    if out is None:
        print(text, end="")
        return
    try:
        write_text_atomic(out, text)
    except OSError as e:
        raise ZooError(f"--out {out}: cannot write it ({e.strerror or e}); nothing was written") from None
    print(f"wrote {out}")
