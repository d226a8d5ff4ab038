"""The zoo's models. Every model module is imported here, so the zoo is listed in one place."""

from zoo.models import (
    dvdgan,  # noqa: F401
    dvg,  # noqa: F401
    mocogan,  # noqa: F401
    pixel,  # noqa: F401
    stylegan_v,  # noqa: F401
    tgan2,  # noqa: F401
    vid2vid,  # noqa: F401
    video_diffusion,  # noqa: F401
    videogpt,  # noqa: F401
)
from zoo.models.base import VideoGenerativeModel, VideoSpec, load_model

__all__ = ["VideoGenerativeModel", "VideoSpec", "load_model"]
