"""A method's initialisation as an encoder: the random-init baseline of the study (stage ``init_encoder``).

A pretraining run of ``method`` with seed ``s`` seeds torch with ``derive_seed(s, "init", method)`` and builds its
backbone before anything else draws from torch (:func:`genssl.train.trainer.pretrain`), so :func:`initial_backbone`
gives, weight for weight, the backbone that run starts from (a test checks it against the trainer's). Written as an
``encoder.safetensors`` like a trained run's, it goes through features and probes like any other encoder: a trained
encoder that does not beat its own initialisation has learnt nothing the probe can use.
"""

import json
import os
from typing import Any

import torch
from torch import nn

from genssl.atomic import atomic_directory
from genssl.models.backbones import build_backbone
from genssl.models.encoder_file import save_encoder
from genssl.provenance import record
from genssl.seeding import derive_seed
from genssl.stages import ENCODER, INIT_RECORD, config_slice, init_keys


def initial_backbone(backbone_config: dict[str, Any], method: str, seed: int) -> tuple[nn.Module, int]:
    """The backbone (and its feature dimension) that a run of ``method`` with ``seed`` starts training from."""
    torch.manual_seed(derive_seed(seed, "init", method))
    return build_backbone(backbone_config)


def write_initial_encoder(
    config: dict[str, Any], method: str, seed: int, out_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write ``out_dir`` (atomically): ``encoder.safetensors``, the initialisation of ``method`` for ``seed`` with the
    configured ``pretrain.backbone``, and ``init.json`` (method, seed, configuration slice, code version); return
    the record."""
    backbone_config = config["pretrain"]["backbone"]
    backbone, dim = initial_backbone(backbone_config, method, seed)
    info = {"method": method, "seed": seed, **record(config_slice(config, init_keys()), {})}
    with atomic_directory(out_dir) as tmp:
        save_encoder(tmp / ENCODER, backbone, backbone_config, dim)
        (tmp / INIT_RECORD).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
