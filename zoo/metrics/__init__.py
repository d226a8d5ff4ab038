"""Evaluation metrics (FVD, KVD, IS, PRDC, ACD) as DDP-synced torchmetrics; detectors under `zoo.metrics.detectors`."""

from zoo.metrics import fvd, inception_score, prdc, presets  # noqa: F401  (register fvd, kvd, is, prdc, acd, presets)
