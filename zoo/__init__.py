"""video-zoo: a unified benchmark zoo for video generative models."""

__version__ = "0.1.0"
