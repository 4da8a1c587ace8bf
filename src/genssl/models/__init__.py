"""Encoders (backbones) whose pooled output is the representation."""

from genssl.models.backbones import BACKBONES, build_backbone

__all__ = ["BACKBONES", "build_backbone"]
