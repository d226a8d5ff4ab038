"""Evaluation metrics (FVD, KVD, IS) as DDP-synced torchmetrics; detectors under `zoo.metrics.detectors`."""

from zoo.metrics import fvd, inception_score, presets  # noqa: F401  (register fvd, kvd, is and the presets)
