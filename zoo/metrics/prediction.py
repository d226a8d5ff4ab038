"""Best-of-N per-frame scores of video prediction (SVG, Denton & Fergus, ICML 2018, Sec. 4; `generate_svg_lp.py`).

Per test sequence, N sampled futures are scored frame by frame against the real future; the sequence's best sample
is the one whose mean score over the predicted frames is best (SVG sorts samples by `np.mean(ssim[i], 1)` and takes
the last: the best by the mean, not a separate best per frame), and its per-frame scores are averaged over sequences.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def best_of_n(scores: torch.Tensor, higher_is_better: bool = True) -> torch.Tensor:
    """The per-frame scores of each sequence's best sample.

    Args:
        scores: float `[B, N, P]`: sequence, sample, predicted frame.
        higher_is_better: PSNR / SSIM True; LPIPS (a distance) False.

    Returns:
        float `[B, P]`: for each sequence, the row of the sample with the best mean over the P frames (ties: the
        first such sample).
    """
    if scores.dim() != 3 or 0 in scores.shape:
        raise ValueError(f"best_of_n takes scores [B, N, P], got {tuple(scores.shape)}")
    mean = scores.mean(2)  # [B, N]
    best = (mean if higher_is_better else -mean).argmax(1)  # [B]; argmax returns the first maximum
    return scores[torch.arange(len(scores)), best]


class BestOfN(Metric):
    """Sum over sequences of the best sample's per-frame scores (`total` `[P]`) and the sequence count, summed across
    updates and ranks; `compute` = the per-step mean `[P]` (float64)."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, horizon: int, higher_is_better: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.higher = int(horizon), bool(higher_is_better)
        self.add_state("total", default=torch.zeros(self.horizon, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sequences", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor) -> None:
        """Args:
            scores: float `[B, N, P]` per-frame scores of B sequences' N samples.
        """
        if scores.shape[-1] != self.horizon:
            raise ValueError(f"scores cover {scores.shape[-1]} predicted frames, not {self.horizon}")
        self.total += best_of_n(scores, self.higher).to(self.total).sum(0)
        self.sequences += scores.shape[0]

    def compute(self) -> torch.Tensor:
        if self.sequences == 0:
            raise ValueError("BestOfN: no sequences were added")
        return self.total / self.sequences
