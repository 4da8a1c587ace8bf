"""genssl: a reproducible study of generative augmentations for self-supervised learning, and S-DIET."""

__version__ = "0.1.0"
