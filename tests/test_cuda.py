"""The CUDA paths of the trainer (autocast bf16 / fp16 with loss scaling, channels-last); skipped without a GPU."""

import pytest
import torch

from genssl.train.trainer import pretrain
from tests.test_pretrain import digits, tiny_config  # noqa: F401 (digits is a fixture)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_pretraining_on_cuda(digits, tmp_path, precision):  # noqa: F811
    config = tiny_config(epochs=2, device="cuda", precision=precision)
    run = pretrain(config, "byol", "standard", digits, tmp_path)
    assert run["device"].startswith("cuda") and run["precision"] == {"bf16": "bfloat16", "fp16": "float16"}.get(
        precision, "float32"
    )
    assert run["final"]["loss"] < 10 and (tmp_path / "encoder.safetensors").exists()
