"""A metrics CSV that survives `--resume`.

Lightning's CSVLogger deletes an existing `metrics.csv` when it starts, so a resumed run would lose the curve
logged before the interruption. `ContinuingCSVLogger` keeps the rows logged before the checkpoint's step, drops
rows a crashed run logged after it (those steps are trained again), and appends. A last line cut short (a killed
process, a full disk) is dropped with a warning rather than stopping the resume.
"""

from __future__ import annotations

import csv
import io
import logging
import os

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

log = logging.getLogger(__name__)


def _step_of(row: dict) -> int | None:
    try:
        return int(float(row.get("step") or ""))
    except (TypeError, ValueError):
        return None


class _ContinuingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, keep_before_step: int | None):
        self.keep_before_step = keep_before_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.keep_before_step is None or not os.path.isfile(self.metrics_file_path):
            return super()._check_log_dir_exists()  # a fresh run: Lightning's behaviour
        with open(self.metrics_file_path, "rb") as file:
            text = file.read().decode("utf-8", "replace")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith(("\n", "\r")):  # cut short mid-write: not a complete row
            log.warning("%s: dropped the incomplete last line %r (the run that wrote it was interrupted)",
                        self.metrics_file_path, lines[-1][:80])
            lines = lines[:-1]
        reader = csv.DictReader(io.StringIO("".join(lines)))
        header = list(reader.fieldnames or [])
        rows = []
        for row in reader:
            step = _step_of(row)
            if step is None or None in row or None in row.values():
                log.warning("%s line %d is not a complete metrics row; dropped", self.metrics_file_path,
                            reader.line_num)
                continue
            if step < self.keep_before_step:
                rows.append(row)
        tmp = self.metrics_file_path + ".tmp"
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.metrics_file_path)
        self.metrics_keys = header  # later saves append under the same header (or rewrite it for new keys)


class ContinuingCSVLogger(CSVLogger):
    """`CSVLogger` writing `<save_dir>/metrics.csv`, continued rather than deleted when resuming.

    Args:
        save_dir: the run directory.
        keep_before_step: resuming from a checkpoint taken after this many steps: keep rows with a smaller step.
            None for a fresh run.
    """

    def __init__(self, save_dir, keep_before_step: int | None = None):
        super().__init__(save_dir=save_dir, name="", version="")
        self._keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self._keep_before_step)
        return self._experiment
