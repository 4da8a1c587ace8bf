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


def test_sdiet_on_cuda_reads_rows_ahead_into_pinned_memory_with_the_same_result(digits16, tmp_path, monkeypatch):
    """On CUDA the rows read ahead are caught up and pinned on the reader thread (the others are pinned before
    their copy); the run's bytes are those of a run without the read-ahead."""
    from genssl.methods.head_store import ARRAYS, LAST_STEP
    from genssl.methods.sdiet import SDIET

    config = tiny_pretrain_config(epochs=2, device="cuda", precision="bf16")
    pinned = []
    original = SDIET._prepare_ahead

    def prepare(self, *args):
        prepared = original(self, *args)
        pinned.append(prepared[1].weight.is_pinned())
        return prepared

    monkeypatch.setattr(SDIET, "_prepare_ahead", prepare)
    pretrain(config, "sdiet", "standard", digits16, tmp_path / "ahead")
    assert pinned and all(pinned)
    monkeypatch.setattr(SDIET, "prefetch_external", lambda self, indices: None)
    pretrain(config, "sdiet", "standard", digits16, tmp_path / "plain")
    for name in ["encoder.safetensors", *(f"head/{f}" for f in [*ARRAYS.values(), LAST_STEP])]:
        assert (tmp_path / "ahead" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name


def test_pretraining_on_cuda_with_graphed_views_gives_the_same_encoder(digits16, tmp_path):
    """pretrain.cuda_graph_views replays the views of each batch as a CUDA graph: the run's bytes are unchanged."""
    for graphed in (False, True):
        config = tiny_pretrain_config(epochs=2, device="cuda", precision="bf16", cuda_graph_views=graphed)
        pretrain(config, "simclr", "standard", digits16, tmp_path / str(graphed))
    encoders = [(tmp_path / str(g) / "encoder.safetensors").read_bytes() for g in (False, True)]
    assert encoders[0] == encoders[1]
