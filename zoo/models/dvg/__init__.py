"""DVG: Diverse Video Generation using a Gaussian Process Trigger.

Shrivastava & Shrivastava. ICLR 2021. https://openreview.net/forum?id=Qm7R_SdqTpT (arXiv 2107.04619)

Video prediction from `n_past` observed frames. A frame auto-encoder (SVG-style DCGAN encoder / decoder with skip
connections, Sec. 3.1, `networks.py`) maps frames to latents h_t in (-1, 1)^g_dim; a deterministic LSTM predicts
h_{t+1} from h_t and continues an ongoing action; a batch of g_dim variational GPs (`gp.py`, Sec. 3.2) models the
distribution of h_{t+1}[d] given h_t[d]. At test time the trigger (Sec. 3.3) watches the GP's variance over the
output function space: above a threshold the ongoing action is ending and DVG draws a new future from the GP; below
it, it keeps the LSTM's prediction. Training (`module.py`) follows the official `shgaurav1/DVG` `train.py`
(checked): per step, a joint update of encoder, decoder, LSTM and GP (each its own Adam, lr 0.002) on
1000 AE-MSE + 0.001 pred-MSE + 0.01 latent-MSE + 0.001 MSE(decode(GP mean)) + 0.0001 (-ELBO), every term summed over
the n_past + n_future - 1 teacher-forced steps, then an LSTM-only update on the latent MSE and a GP-only update on
-ELBO; the GP's lr drops x0.1 at steps 600 and 1200.

Deviations from the official code, with reasons (docs/models/dvg.md has the same list):
* The trigger is the paper's rule: the variance of f (the abstract's "variance of GP over the output function
  space", without the likelihood's noise), averaged over the latent dimensions, > `trigger_threshold`. The
  released code never tests the variance: `train.py`'s `plot()` fires at frame 10 and `generate_frames.py` every 15th
  frame. The threshold's value is not in the code; 0.05 is this port's default (a setting to tune per dataset).
* gpytorch's current `ApproximateGP` / `VariationalStrategy` replaces the removed 0.3 API (same model and ELBO;
  equations checked by hand in tests/models/test_dvg_gp.py).
* GP draws are per-clip marginals (mean + std * eps); the official `rsample()` draws jointly over the batch, which
  ties the futures of unrelated clips in one batch together through the kernel.
* Each frame is encoded once per joint step (the official encodes middle frames twice: same outputs and gradients,
  but BatchNorm's running statistics move twice); the finetune phases encode without gradient (the official lets
  gradient reach the encoder there, which no optimiser then uses). The GP's gradient is zeroed before the joint step
  (the official never zeroes it there, so the previous GP-only step's gradient leaks into the joint one).
* Prediction runs in eval mode (BatchNorm running statistics); the official test loops leave the encoder and decoder
  in training mode (batch statistics, so a prediction depends on the other clips of its batch).
* `sample()` from noise is refused with one line: DVG has no prior over first frames.
* Powers of two other than 64 add or remove stride-2 stages (CPU configs); 64x64 is the official network.
"""

from zoo.models.dvg.module import DVG, DVGConfig

__all__ = ["DVG", "DVGConfig"]
