"""One evaluation path: sample (or read videos) -> uint8 -> detector features -> metric -> leaderboard row.

`zoo eval` resolves each requested metric to a protocol preset, groups metrics that share detector features (FVD and
KVD on the same I3D pass), extracts real features once per protocol fingerprint (cached), samples a checkpoint's
videos once for all groups that score the same clips (IS and ACD read other detector outputs than FVD, not other
videos), extracts generated features in batches on every rank (DDP: gloo on CPU, NCCL on GPU; batch b always holds
the same samples whatever the number of ranks), syncs the metric states, prints a table and appends leaderboard rows.

One module per step, read top-down:

* `request`: `EvalRequest` (what was asked) and `EvalResult` (what was found);
* `protocol`: metric keys -> presets, their metric objects, the data config of each group;
* `validate`: every input checked in seconds, before any expensive work;
* `sources`: the shared core's first step, real clips and generated videos as uint8 batches;
* `unconditional` / `likelihood` / `conditional` / `prediction`: one file per task, from those batches to metric
  values (`prediction_plot`: the prediction task's per-step curves);
* `run`: the processes (DDP) and their results; `report`: the printed table and leaderboard rows;
* `command`: the `zoo eval` parser.
"""

from zoo.evaluation.request import EvalRequest, EvalResult
from zoo.evaluation.run import evaluate

__all__ = ["EvalRequest", "EvalResult", "evaluate"]
