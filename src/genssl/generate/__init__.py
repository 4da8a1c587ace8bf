"""Offline generative augmentation: instance-conditioned generators, variant stores and their generation."""
