"""vid2vid: one training step (one chunk of 6 frames) of the zoo's networks and losses vs the official NVIDIA/vid2vid
networks and losses, same weights, same inputs, one process, CPU float32.

    python3 benchmarks/models_vid2vid.py --official /path/to/NVIDIA/vid2vid [--threads 1]

A step is what the official `train.py` does per chunk: the generator's sequential forward over the chunk, the image
and temporal discriminator losses, then backward + Adam for G, D_I and D_V in that order. The official side runs its
own `generate_frame_train`, `Vid2VidModelD.forward` and `get_skipped_frames`; it needs CPU shims applied in this
process only (Tensor.cuda as the identity, grid_sample with align_corners=True as in PyTorch 0.4, torchvision / cv2
stubbed when absent: VGG off on both sides). Without `--official` (as `benchmarks/models.py` calls `rows()`) only the
zoo's row is produced. CSV rows `what,config,value,unit`.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from zoo.models.base import VideoSpec  # noqa: E402
from zoo.models.vid2vid import Vid2Vid, Vid2VidConfig  # noqa: E402
from zoo.models.vid2vid.generator import pyramid  # noqa: E402
from zoo.models.vid2vid.module import Chunk  # noqa: E402

B, FRAMES, SIZE, CLASSES, K = 4, 6, 32, 4, 3  # shapes.yaml's batch, generated frames, 32x32, classes; n_frames_g
CONFIG = dict(ngf=32, n_downsample_g=2, n_blocks=4, ndf=32, n_frames_total=FRAMES, max_frames_per_update=FRAMES)
NAME = f"shapes.yaml nets b{B} {FRAMES}+2 frames {SIZE}^2 cpu fp32"


def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seg = torch.randint(CLASSES, (B, FRAMES + K - 1, SIZE, SIZE), generator=g)
    return {"video": torch.rand(B, 3, FRAMES + K - 1, SIZE, SIZE, generator=g) * 2 - 1,
            "condition": rearrange(F.one_hot(seg, CLASSES).float(), "b t h w c -> b c t h w"),
            "flow_back": torch.randn(B, 2, FRAMES + K - 2, SIZE, SIZE, generator=g),
            "valid": torch.rand(B, FRAMES + K - 2, SIZE, SIZE, generator=g) > 0.2}


def zoo_step(model: Vid2Vid, x: dict[str, torch.Tensor]):
    opts = [torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in
            (model.generator, model.image_discriminator, *model.temporal_discriminators)]

    def step():
        video, cond, t0 = x["video"], x["condition"], K - 1
        gen = model.generator.generate(cond, pyramid(video[:, :, :t0], 1))
        fake = gen.frames[0]
        temporal, _ = model.temporal_inputs(None, video[:, :, t0:], fake, x["flow_back"][:, :, t0 - 1:])
        fake_prev = torch.cat([video[:, :, t0 - 1:t0], fake[:, :, :-1].detach()], dim=2)
        chunk = Chunk(cond[:, :, t0:], video[:, :, t0:], video[:, :, t0 - 1:-1], fake_prev, gen,
                      x["flow_back"][:, :, t0 - 1:], x["valid"][:, None, t0 - 1:].float(), temporal)
        losses = [model.generator_loss(chunk)[0], model.image_discriminator_loss(chunk)[0]]
        losses += [model.temporal_discriminator_loss(chunk, s)[0] for s in range(len(temporal))]
        for opt, loss in zip(opts, losses):
            opt.zero_grad()
            loss.backward()
            opt.step()

    return step


def official_step(official: Path, model: Vid2Vid, x: dict[str, torch.Tensor]):
    """The official per-chunk step on networks holding `model`'s weights (shims applied to this process)."""
    sys.path.insert(0, str(official))
    for name in ("torchvision", "cv2"):
        if importlib.util.find_spec(name) is None:
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
            stub.models = types.SimpleNamespace(vgg19=None)
            stub.transforms = types.SimpleNamespace()
            sys.modules[name] = stub
            if name == "torchvision":
                sys.modules["torchvision.transforms"] = stub.transforms
    torch.Tensor.cuda = lambda self, *a, **k: self
    from models import base_model, networks
    from models.vid2vid_model_D import Vid2VidModelD, get_skipped_flows, get_skipped_frames
    from models.vid2vid_model_G import Vid2VidModelG

    def get_grid(batchsize, rows, cols, gpu_id=0, dtype=torch.float32):
        hor = torch.linspace(-1.0, 1.0, cols, dtype=dtype).view(1, 1, 1, cols).expand(batchsize, 1, rows, cols)
        ver = torch.linspace(-1.0, 1.0, rows, dtype=dtype).view(1, 1, rows, 1).expand(batchsize, 1, rows, cols)
        return torch.cat([hor, ver], 1)

    def grid_sample(self, a, b):
        return F.grid_sample(a, b, mode="bilinear", padding_mode="border", align_corners=True)

    networks.get_grid = base_model.get_grid = get_grid
    networks.BaseNetwork.grid_sample = base_model.BaseModel.grid_sample = grid_sample
    c = model.config
    opt = types.SimpleNamespace(n_frames_G=K, fg=False, fg_labels=[1], no_first_img=False, fp16=False,
                                n_blocks=c.n_blocks, label_nc=CLASSES, n_scales_spatial=1, lambda_feat=10.0,
                                lambda_F=10.0, lambda_T=10.0, n_frames_D=3, no_vgg=True, no_ganFeat=False,
                                n_layers_D=c.n_layers_d, num_D=c.num_d, add_face_disc=False, output_nc=3)
    norm = networks.get_norm_layer(c.norm)
    net_g = networks.CompositeGenerator(opt, CLASSES * K, 3, 3 * (K - 1), c.ngf, c.n_downsample_g, c.n_blocks, False,
                                        False, norm)
    names = {"label_down": "model_down_seg", "image_down": "model_down_img", "image_res": "model_res_img",
             "flow_res": "model_res_flow", "image_up": "model_up_img", "flow_up": "model_up_flow",
             "image_head": "model_final_img", "flow_head": "model_final_flow", "mask_head": "model_final_w"}
    net_g.load_state_dict({names[k.split(".", 1)[0]] + "." + k.split(".", 1)[1]: v
                           for k, v in model.generator.scales[0].state_dict().items()})

    def discriminator(ours, in_channels):
        net = networks.define_D(in_channels, c.ndf, c.n_layers_d, c.norm, c.num_d, True)
        state = {}
        for key, value in ours.state_dict().items():
            _, k, _, j, rest = key.split(".", 4)  # scales.{k}.blocks.{j}.{rest}
            state[f"scale{c.num_d - 1 - int(k)}_layer{j}.{rest}"] = value
        net.load_state_dict(state)
        return net

    net_d = discriminator(model.image_discriminator, CLASSES + 3)
    net_dt = discriminator(model.temporal_discriminators[0], 3 * 3 + 2 * 2)
    g = Vid2VidModelG.__new__(Vid2VidModelG)
    torch.nn.Module.__init__(g)
    g.opt, g.n_scales, g.bs, g.n_frames_load, g.n_frames_per_gpu = opt, 1, B, FRAMES, FRAMES
    g.split_gpus, g.finetune_all, g.n_frames_bp, g.gpu_ids = False, True, 1, []
    d = Vid2VidModelD.__new__(Vid2VidModelD)
    torch.nn.Module.__init__(d)
    d.opt, d.gpu_ids, d.tD, d.output_nc, d.Tensor = opt, [-1], 3, 3, torch.FloatTensor
    d.netD, d.netD_T0 = net_d, net_dt
    d.criterionGAN = networks.GANLoss("ls", tensor=torch.FloatTensor)
    d.criterionFlow, d.criterionWarp = networks.MaskedL1Loss(), networks.MaskedL1Loss()
    d.criterionFeat = torch.nn.L1Loss()
    d.loss_names = ["G_VGG", "G_GAN", "G_GAN_Feat", "D_real", "D_fake", "G_Warp", "F_Flow", "F_Warp", "W"]
    d.loss_names_T = ["G_T_GAN", "G_T_GAN_Feat", "D_T_real", "D_T_fake", "G_T_Warp"]
    opts = [torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (net_g, net_d, net_dt)]
    bt = "b c t h w -> b t c h w"
    real_a = rearrange(x["condition"], bt).contiguous()
    real_b = rearrange(x["video"], bt).contiguous()
    flow_ref = rearrange(x["flow_back"][:, :, K - 2:], bt).contiguous()
    conf_ref = rearrange(x["valid"][:, None, K - 2:].float(), bt).contiguous()

    def flat(tensors):
        return [t.contiguous().view(-1, *t.shape[2:]) for t in tensors]

    def step():
        t0 = K - 1
        pyr, raw, flow, weight = g.generate_frame_train([[net_g]], real_a, g.build_pyr(real_b[:, :t0]), 0, True)
        fake = pyr[0][:, t0:]
        real_now, real_prev = real_b[:, t0:], real_b[:, t0 - 1:-1]
        fake_prev = g.compute_fake_B_prev(real_prev, None, fake)
        losses = dict(zip(d.loss_names, (v.mean() for v in d(0, flat(
            [real_now, fake, raw, real_a[:, t0:], real_prev, fake_prev, flow, weight, flow_ref, conf_ref])))))
        real_sk = get_skipped_frames(None, real_now, 1, 3)[1]
        fake_sk = get_skipped_frames(None, fake, 1, 3)[1]
        flow_sk, conf_sk = get_skipped_flows(None, None, None, real_sk, flow_ref, conf_ref, 1, 3)[2:]
        losses_t = dict(zip(d.loss_names_T, (v.mean() for v in d(1, [real_sk[0], fake_sk[0], flow_sk[0], conf_sk[0]]))))
        loss_g = sum(losses[k] for k in ("G_GAN", "G_GAN_Feat", "G_Warp", "F_Flow", "F_Warp", "W"))
        loss_g = loss_g + losses_t["G_T_GAN"] + losses_t["G_T_GAN_Feat"]
        loss_d = 0.5 * (losses["D_real"] + losses["D_fake"])
        loss_dt = 0.5 * (losses_t["D_T_real"] + losses_t["D_T_fake"])
        for o, loss in zip(opts, (loss_g, loss_d, loss_dt)):
            o.zero_grad()
            loss.backward()
            o.step()

    return step


def rows(official: str | None = None, repeats: int = 5) -> list[tuple]:
    """Median step times; both sides built from the same initial weights before either trains, then timed in
    alternation (one warm-up each) so that load changes on a shared machine hit both alike."""
    torch.manual_seed(0)
    model = Vid2Vid(Vid2VidConfig(**CONFIG), VideoSpec(3, FRAMES + K - 1, SIZE, 0, "segmentation", CLASSES))
    x = inputs()
    name = f"{NAME} {torch.get_num_threads()} threads"
    steps = {"zoo": None}
    if official:
        steps["official networks"] = official_step(Path(official), model, x)  # copies the weights first
    steps["zoo"] = zoo_step(model, x)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(repeats):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(1000 * (time.perf_counter() - start))
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    out = [(f"vid2vid train step ({k})", name, round(v, 1), "ms") for k, v in median.items()]
    if official:
        out.append(("vid2vid train step zoo / official", name, round(median["zoo"] / median["official networks"], 3),
                    "ratio"))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", help="checkout of NVIDIA/vid2vid (outside the repository)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("what,config,value,unit")
    for row in rows(args.official, args.repeats):
        print(",".join(str(v) for v in row))
