"""vid2vid: Video-to-Video Synthesis.

Wang, Liu, Zhu, Liu, Tao, Kautz, Catanzaro. NeurIPS 2018. https://arxiv.org/abs/1808.06601

A conditional video GAN translating a sequence of source maps s (segmentation, edges, poses) into a video x. The
generator is sequential with a Markov window (Sec. 3.1, Eq. 2-3, `generator.py`): frame t comes from s_{t-2..t} and
the two previously generated frames as x_t = (1 - m) * warp(x_{t-1}, w) + m * h, with a foreground network for
segmentation inputs (Eq. 4) and pix2pixHD's coarse-to-fine scales (Sec. 3.2). An image discriminator judges
(s_t, x_t) and a video discriminator K = 3 consecutive frames with their flow at several frame rates (Sec. 3.2,
`discriminators.py`). Training (`module.py`) follows the official `NVIDIA/vid2vid` (train.py, models/vid2vid_model_G.py,
models/vid2vid_model_D.py, models/networks.py, options/*.py; checked): LSGAN; discriminator feature matching
(lambda_feat 10) against both discriminators; VGG on x_t and h (lambda_feat 10); flow L1 to the reference flow
(lambda_F 10 / 2^(scales - 1)) and the warp of the real previous frame by the predicted flow (lambda_T 10), both
masked by the reference flow's confidence; the warp loss of x_t against the previous generated frame warped by the
reference flow (lambda_T 10); the mask loss pushing m to 0 (only with `no_first_img`). Per chunk of frames, one
generator forward, then the G update, the image-D update and one update per temporal D that had frame groups, all
from those frames (D losses 0.5 (real + fake)); Adam(2e-4, 0.5, 0.999) for each; previous frames detached
(max_frames_backpropagate 1); the first n_frames_g - 1 frames of a training sequence are real (official default)
or generated from zeros (`no_first_img`); the curriculum doubles the generated length every `niter_step` epochs, the
learning rate of G and D_I decays linearly to 0 over `niter_decay` epochs after `niter` (D_V's stays, as in the
official code). Defaults: the Cityscapes 512 x 256 setting (scripts/street/train_512.sh with options defaults);
the source of each is in `Vid2VidConfig`'s comments. `translate` normalises with batch statistics, as the official
test.py (it never calls eval()).

Transplant (docs/models/vid2vid.md; script outside the repository): the official networks and losses on CPU and
these, same weights, float64, same inputs (4 generated frames of 2 clips, 32x32): max |difference| of G's x_t, h, w,
m 8.4e-12, 1.8e-12, 4.5e-11, 4.7e-13 (1 scale, batch norm, warping real first frames; the grid of the warp is
computed differently, by linspace there) and exactly 0 (2 scales with the foreground network, instance norm,
`no_first_img`); every discriminator feature map 0; every G, D_I and D_V loss term <= 6e-13. One whole training
step (6 frames in 2 chunks, official train.py loop vs `training_step` under Lightning, float64): parameters after it
within 3.3e-11 (G weights), 7e-13 (D_I), 2.6e-10 (D_V); 5.5e-8 in conv biases before BatchNorm (zero true gradient).

Deviations from the official code:
* Reference flow: the batch's true `flow_back` (shapes) with `flow_back_valid` as confidence instead of FlowNet2 on
  the real frames with its warp-error confidence (FlowNet2 needs CUDA-only kernels). Flows between frames K^s apart
  (temporal scales s >= 1) are the one-frame flows composed by warping, not FlowNet2 on the skipped frames. Without
  `flow_back` in the batches (edges, paired folders) the flow, warp and mask losses are off and D_V gets zero
  flows; the run records that (`recorded.vid2vid.flow` in its config.yaml) and warns once.
* VGG loss only with a local VGG19 state dict (`model.vgg_weights`; torchvision is not a dependency); without one
  it is off, recorded (`recorded.vid2vid.vgg_loss`) and warned about once.
* No instance maps (`--use_instance`: an edge map of instance boundaries as an extra input channel): the zoo's
  conditional data has none. No instance-wise feature embedding (Sec. 3.3, its test-time GMM sampling), as in the
  official street scripts, which do not use it either.
* Square frames (data.resolution); Cityscapes runs at 512 x 256 there.
* Epochs are counted in `epoch_steps` training steps; the curriculum caps the generated length at the clip length
  data.frames - 2 (the official cap is the sequence length, at most 128).
* Growing (`pretrained`, `niter_fix_global`): while only the finest scale trains, one Adam holds every scale and
  the coarse scales simply get no gradient (the official code builds a new Adam over all scales afterwards, so the
  finest scale's Adam state restarts there).
* `max_frames_backpropagate` is fixed at its default 1 (previous frames always enter detached); `sparse_D`, TTUR,
  fp16, the face discriminator and the pose/face data options are not implemented.
* Without `first_frames`, `translate` makes frame 0 from zero previous frames and no warping, with source windows
  padded by repeating s_0 (the official test either takes real frames, a separate pix2pixHD model or, with
  `--no_first_img`, the same zero past).
"""

from zoo.models.vid2vid.module import Vid2Vid, Vid2VidConfig

__all__ = ["Vid2Vid", "Vid2VidConfig"]
