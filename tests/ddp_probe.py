"""Runs `zoo fit` through `zoo.cli.main` under real DDP and records, per rank, the local (unsynced) losses and the
final weights. Lightning's DDP launcher re-executes this script once per extra rank, so every rank records.

Usage: python tests/ddp_probe.py OUT_DIR -- <zoo fit arguments>
"""

import json
import sys
from pathlib import Path

import torch

import zoo.training
from zoo.cli import main
from zoo.models.base import VideoGenerativeModel

out = Path(sys.argv[1])
argv = sys.argv[sys.argv.index("--") + 1 :]
original_log_losses = VideoGenerativeModel.log_losses
original_fit = zoo.training.fit


def recording_log_losses(self, losses, prog_bar=()):
    with open(out / f"local_rank{self.global_rank}.jsonl", "a") as f:
        f.write(json.dumps({"step": self.iteration, **{k: float(v) for k, v in losses.items()}}) + "\n")
    return original_log_losses(self, losses, prog_bar)


def recording_fit(config, resume=None):
    result = original_fit(config, resume)
    torch.save(result.model.state_dict(), out / f"weights_rank{result.model.global_rank}.pt")
    return result


VideoGenerativeModel.log_losses = recording_log_losses
zoo.training.fit = recording_fit
sys.exit(main(argv))
