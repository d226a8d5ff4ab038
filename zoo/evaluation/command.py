"""`zoo eval`: its parser and the request it builds."""

from __future__ import annotations

from zoo.evaluation.conditional import CONDITIONAL_KEYS
from zoo.evaluation.prediction import PREDICTION_PRESETS
from zoo.evaluation.request import METRIC_KEYS, EvalRequest
from zoo.evaluation.run import evaluate
from zoo.metrics.presets import DEFAULT_PRESET, MODEL_LENGTH_PRESETS, PRESETS, Preset
from zoo.paths import default_leaderboard


def metric_table() -> str:
    """Every key `--metric` takes, from the metric registry: plain metrics with their default preset, then every
    preset with its metric and protocol."""
    from zoo.registry import METRICS, load_all

    load_all()
    lines = ["metrics (--metric KEY scores with the default preset; --preset NAME picks another):"]
    lines += [f"  {e.key:<26} default {DEFAULT_PRESET[e.key]}: {e.description}" for e in METRICS
              if e.key in METRIC_KEYS and not isinstance(e.obj, Preset)]
    lines.append("conditional models (a vid2vid checkpoint: its translations of held-out conditions vs their targets; "
                 "also fvd / kvd / prdc presets on those pairs):")
    lines += [f"  {e.key:<26} {e.description}" for e in METRICS if e.key in CONDITIONAL_KEYS]
    lines.append("video prediction (--task predict --context C --horizon P --samples N --num-samples S, or --preset "
                 f"{' | '.join(PREDICTION_PRESETS)}): best-of-N psnr / ssim / lpips per predicted frame, fvd / kvd / "
                 "prdc presets over all predicted clips (docs/evaluation-prediction.md)")
    lines.append("presets (--metric NAME):")
    lines += [f"  {e.key:<26} {e.description}" for e in METRICS if isinstance(e.obj, Preset)]
    lines.append(f"{', '.join(MODEL_LENGTH_PRESETS)} score a checkpoint at its own clip length, as `zoo bench` does "
                 "(a --fake-dir at the preset's 16 frames); the others are fixed published protocols.")
    return "\n".join(lines)


def add_eval_parser(sub) -> None:
    import argparse

    p = sub.add_parser("eval", help="score a checkpoint or a folder of videos (FVD, KVD, IS, PRDC, ACD, bits/dim; "
                                    "conditional models: PSNR, SSIM, LPIPS, warping error, mask IoU), log to the "
                                    "leaderboard",
                       description="Score generated videos against real ones.", epilog=metric_table(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metric", action="append", required=True,
                   help=f"{', '.join(METRIC_KEYS)} or a preset name (listed below); repeatable")
    p.add_argument("--ckpt", help="checkpoint written by `zoo fit` (samples with its EMA weights where kept)")
    p.add_argument("--fake-dir", help="folder of generated videos instead of --ckpt")
    p.add_argument("--real-dir", help="folder of real videos (same as --data folder --data-root DIR)")
    p.add_argument("--data", help="dataset key of the real clips (default: the checkpoint's)")
    p.add_argument("--data-root", help="dataset directory")
    p.add_argument("--set", action="append", default=[], metavar="data.KEY=VALUE",
                   help="another DataConfig field the videos are read with (data.max_bad_fraction, data.decoder, ...)")
    p.add_argument("--clip-list", help="ClipList JSON from `zoo data cliplist` pinning the real clips")
    p.add_argument("--preset", choices=sorted({*PRESETS, *PREDICTION_PRESETS}),
                   help="protocol for plain metric keys (--task predict: a prediction protocol, C, P, N, S)")
    p.add_argument("--task", choices=["generate", "predict"], default="generate",
                   help="generate: samples vs real clips; predict: continue held-out contexts, best-of-N per frame")
    p.add_argument("--context", type=int, help="--task predict: observed frames C (default: the preset's)")
    p.add_argument("--horizon", type=int, help="--task predict: predicted frames P")
    p.add_argument("--samples", type=int, help="--task predict: futures per sequence N (best of N); --num-samples "
                                               "is the number S of held-out sequences")
    p.add_argument("--plot", metavar="FILE.png", help="--task predict: PSNR / SSIM per predicted frame, one line "
                                                      "per model (this run and the leaderboard's rows of its protocol)")
    p.add_argument("--num-samples", type=int, help="generated videos (default: the preset's)")
    p.add_argument("--num-real", type=int, help="real clips (default: the preset's)")
    p.add_argument("--resolution", type=int, help="clip resolution of folders / real data (default: the config's)")
    p.add_argument("--covariance", choices=["unbiased", "biased"], help="FVD covariance: N-1 (TF) or N (StyleGAN-V)")
    p.add_argument("--batch-size", type=int, default=16, help="videos per batch per device")
    p.add_argument("--devices", type=int, default=1, help="processes (DDP; gloo on CPU, NCCL on GPU)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--bootstrap", type=int, default=0, metavar="K", help="report a 95%% interval from K resamples")
    p.add_argument("--stats-only", action="store_true", help="only compute and cache the real statistics")
    p.add_argument("--detector-weights", help="use this detector weights file (its SHA-256 is recorded)")
    p.add_argument("--detector-mean", metavar="FILE",
                   help="the C3D's mean clip (mean2.npz) for IS with custom C3D weights (default: beside them, "
                        "else the cached official file)")
    p.add_argument("--lpips-weights", metavar="FILE",
                   help="--metric lpips: torchvision's AlexNet checkpoint (alexnet-owt-7be5be79.pth); never downloaded")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--leaderboard", default=None,
                   help="CSV to append rows to (default: runs/leaderboard.csv, or $ZOO_HOME/runs/leaderboard.csv)")
    p.add_argument("--no-leaderboard", action="store_true", help="print only")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU cores for the detector and its video-decoding workers (default: $OMP_NUM_THREADS, else "
                        "the cores this process may use, cgroup quota included); each worker keeps one")
    p.set_defaults(run=_run_eval)


def _run_eval(args) -> None:
    request = EvalRequest(
        metrics=args.metric, ckpt=args.ckpt, fake_dir=args.fake_dir, real_dir=args.real_dir, data=args.data,
        data_root=args.data_root, data_sets=args.set, clip_list=args.clip_list, preset=args.preset,
        num_samples=args.num_samples,
        num_real=args.num_real, resolution=args.resolution, covariance=args.covariance, batch_size=args.batch_size,
        devices=args.devices, device=args.device, bootstrap=args.bootstrap, stats_only=args.stats_only,
        detector_weights=args.detector_weights, detector_mean=args.detector_mean, lpips_weights=args.lpips_weights,
        seed=args.seed,
        leaderboard=None if args.no_leaderboard or args.stats_only else args.leaderboard or str(default_leaderboard()),
        threads=args.threads, task=args.task, context=args.context, horizon=args.horizon, samples=args.samples,
        plot=args.plot,
    )
    evaluate(request)
