"""Video Diffusion Models (Ho et al. 2022): `unet3d.py` (network), `schedule.py` (diffusion), `module.py` (model)."""

from zoo.models.video_diffusion.module import VideoDiffusion, VideoDiffusionConfig

__all__ = ["VideoDiffusion", "VideoDiffusionConfig"]
