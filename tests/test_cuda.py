"""The CUDA paths of the trainer (autocast bf16 / fp16 with loss scaling, channels-last); skipped without a GPU."""

import csv

import pytest
import torch

from genssl.train.trainer import pretrain
from tests.helpers import tiny_pretrain_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_pretraining_on_cuda_lowers_the_loss(digits16, tmp_path, precision):
    config = tiny_pretrain_config(epochs=5, device="cuda", precision=precision)
    run = pretrain(config, "byol", "standard", digits16, tmp_path)
    assert run["device"].startswith("cuda") and run["precision"] == {"bf16": "bfloat16", "fp16": "float16"}.get(
        precision, "float32"
    )
    with open(tmp_path / "metrics.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 5 and losses[-1] < losses[0], losses
