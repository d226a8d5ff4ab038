"""Evaluation metrics (FVD, KVD, IS, PRDC, ACD; conditional: PSNR, SSIM, LPIPS, warping error, mask IoU) as
DDP-synced torchmetrics; detectors under `zoo.metrics.detectors`."""

# imported for their registrations: fvd, kvd, is, prdc, acd, the presets, psnr, ssim, warp_error, mask_iou, lpips
from zoo.metrics import conditional, fvd, inception_score, lpips, prdc, presets  # noqa: F401
