"""Evaluation metrics (FVD, KVD, IS) as DDP-synced torchmetrics; detectors under `zoo.metrics.detectors`."""
