"""VideoGPT (Yan et al. 2021): stage 1 `videogpt_vqvae` (vqvae.py) and stage 2 `videogpt`, the prior (gpt.py)."""

from zoo.models.videogpt import gpt, vqvae  # noqa: F401
