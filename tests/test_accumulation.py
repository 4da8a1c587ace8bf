"""Gradient accumulation (``methods.X.accumulate_steps``): the step plan's lr rule against the sources' values, an
accumulated step against one big-batch step, and a run that accumulates."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from genssl.augment import BatchAugment, ViewSpec
from genssl.config import validate_config
from genssl.errors import ConfigError
from genssl.methods import RunContext, build_method
from genssl.optim import build_optimizer
from genssl.train.plan import StepPlan
from genssl.train.trainer import forward_backward, optimizer_step, pretrain
from tests.helpers import tiny_pretrain_config

SOURCES = yaml.safe_load((Path(__file__).parent / "data" / "paper_sources.yaml").read_text())
IMAGENET_TRAIN = 1_281_167


def _plan(method: str, batch: int, accumulate: int, lr: float, num_train: int = IMAGENET_TRAIN) -> StepPlan:
    own = {"batch_size": batch, "accumulate_steps": accumulate, "lr": lr}
    config = validate_config(
        {"datasets": {"d": {"source": "digits"}}, "pretrain": {"dataset": "d", "epochs": 100}, "methods": {method: own}}
    )
    return StepPlan.resolve(config, method, num_train)


@pytest.mark.parametrize(
    ("method", "variant"),
    [("byol", "official"), ("byol", "solo_learn"), ("simclr", "official"), ("mocov2plus", "solo_learn")],
)
def test_k_accumulated_batches_of_b_reach_the_sources_lr(method, variant):
    """genssl's batch_size is the source's images per forward pass (per GPU x GPUs x nodes); accumulate_steps is
    its accumulate_grad_batches; the optimiser then receives the source's effective lr."""
    source = SOURCES["methods"][method][variant]
    batch = source["batch"]
    per_forward = batch["per_device"] * batch["devices"] * batch["nodes"]
    plan = _plan(method, per_forward, batch["accumulate"], source["optimizer"]["lr"])
    assert plan.images_per_step == batch["per_step"], source["source"]
    assert plan.lr == pytest.approx(source["effective_lr"]), source["source"]
    assert plan.steps_per_epoch == IMAGENET_TRAIN // batch["per_step"]


def test_the_plan_counts_optimiser_steps_and_forward_passes():
    plan = _plan("byol", 1024, 16, 0.2)
    assert (plan.local_batch, plan.images_per_step, plan.steps_per_epoch) == (1024, 16384, 78)
    # warm-up: the default 2 epochs of 78 steps
    assert (plan.forwards_per_epoch, plan.total_steps, plan.warmup_steps) == (78 * 16, 7800, 2 * 78)
    assert plan.lr == pytest.approx(12.8)
    with pytest.raises(ConfigError, match=r"methods.byol.batch_size: step of 64 x 32 accumulated images is larger"):
        _plan("byol", 64, 32, 0.2, num_train=1293)


def test_s_diet_refuses_accumulation():
    with pytest.raises(ConfigError, match=r"methods\.sdiet\.accumulate_steps"):
        validate_config(
            {
                "datasets": {"d": {"source": "digits"}},
                "pretrain": {"dataset": "d"},
                "methods": {"sdiet": {"accumulate_steps": 2}},
            }
        )


#: The whole image, no random op: every pass sees exactly its images, so passes and one big batch see the same.
IDENTITY = ViewSpec(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def _diet(num_samples: int) -> nn.Module:
    """DIET (a loss that is a mean over the batch's images) on a linear backbone (no batch statistics)."""
    torch.manual_seed(0)
    config = validate_config(
        {"datasets": {"d": {"source": "digits"}}, "pretrain": {"dataset": "d"}, "methods": {"diet": {}}}
    )["methods"]["diet"]
    context = RunContext(num_samples=num_samples, total_steps=1, lr=lambda t: 0.1, out_dir=Path("."), seed=0)
    return build_method("diet", nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16)), 16, config, context)


def test_an_accumulated_step_equals_one_step_on_the_whole_batch():
    """k passes of B images with loss / k give the gradient, and the SGD step, of one pass over k B images (for a
    per-image mean loss without batch statistics; batch norm and contrastive negatives see one pass's batch)."""
    images = torch.randint(0, 256, (12, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    indices = torch.arange(12)
    augment = BatchAugment([IDENTITY], out_size=8)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    grads, params = [], []
    for k in (1, 3):
        method = _diet(12)
        optimizer = build_optimizer(method.named_parameters(), "sgd", lr=0.5, weight_decay=0.0, momentum=0.0)
        optimizer.zero_grad(set_to_none=True)
        for part in range(k):
            rows = slice(part * 12 // k, (part + 1) * 12 // k)
            view_params = augment.draw(12, 8, 8, torch.Generator())[rows]
            forward_backward(method, scaler, augment, images[rows], indices[rows], view_params, k)
        grads.append([p.grad.clone() for p in method.parameters()])
        optimizer_step(method, optimizer, scaler, 0, 1)
        params.append([p.detach().clone() for p in method.parameters()])
    for whole, accumulated in zip(*grads, strict=True):
        assert torch.allclose(whole, accumulated, atol=1e-7, rtol=1e-5)
    for whole, accumulated in zip(*params, strict=True):
        assert torch.allclose(whole, accumulated, atol=1e-7, rtol=1e-5)
    assert any(not torch.equal(g, torch.zeros_like(g)) for g in grads[0])


def test_a_run_accumulates_and_records_it(digits16, tmp_path):
    config = tiny_pretrain_config(epochs=1)
    config["methods"]["byol"]["accumulate_steps"] = 2
    run = pretrain(config, "byol", "standard", digits16, tmp_path / "byol")
    assert (run["batch_size"], run["accumulate_steps"], run["steps"]) == (64, 2, 1293 // 128)
    recorded = json.loads((tmp_path / "byol" / "run.json").read_text())
    assert recorded["accumulate_steps"] == 2
    assert (tmp_path / "byol" / "encoder.safetensors").exists()
