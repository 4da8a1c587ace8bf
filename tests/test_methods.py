"""Each loss against an independent computation (explicit loops), and the methods' moving parts."""

import math

import pytest
import torch
from torch import nn

from genssl.config import validate_config
from genssl.distributed import CPUSyncBatchNorm, convert_sync_batchnorm
from genssl.errors import ConfigError
from genssl.methods import METHODS, build_method
from genssl.methods.barlowtwins import barlow_twins_loss
from genssl.methods.byol import byol_loss
from genssl.methods.heads import momentum_update
from genssl.methods.mocov2plus import moco_loss
from genssl.methods.simclr import nt_xent_loss
from genssl.methods.simsiam import simsiam_loss
from genssl.models import build_backbone


@pytest.fixture(autouse=True)
def float64():
    """Exact comparisons with the explicit float computations."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _rows(t):
    return [list(map(float, row)) for row in t]


def test_nt_xent_against_explicit_loop():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    t = 0.3
    views = _rows(z1) + _rows(z2)
    n = 5
    total = 0.0
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        denominator = sum(math.exp(_cos(views[a], views[k]) / t) for k in range(2 * n) if k != a)
        total += -math.log(math.exp(_cos(views[a], views[p]) / t) / denominator)
    assert nt_xent_loss(z1, z2, t).item() == pytest.approx(total / (2 * n), rel=1e-12)


def test_moco_loss_against_explicit_loop():
    g = torch.Generator().manual_seed(1)
    q = nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    k = nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    queue = nn.functional.normalize(torch.randn(4, 6, generator=g), dim=0)
    t = 0.2
    total = 0.0
    for i in range(3):
        positive = math.exp(float(q[i] @ k[i]) / t)
        negatives = sum(math.exp(float(q[i] @ queue[:, j]) / t) for j in range(6))
        total += -math.log(positive / (positive + negatives))
    assert moco_loss(q, k, queue, t).item() == pytest.approx(total / 3, rel=1e-12)


def test_byol_and_simsiam_losses_against_cosines():
    g = torch.Generator().manual_seed(2)
    p, z = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    cosines = [_cos(a, b) for a, b in zip(_rows(p), _rows(z), strict=True)]
    assert byol_loss(p, z).item() == pytest.approx(2 - 2 * sum(cosines) / 4, rel=1e-12)
    assert simsiam_loss(p, z).item() == pytest.approx(-sum(cosines) / 4, rel=1e-12)


def test_stop_gradient_of_the_target():
    p = torch.randn(4, 3, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    (byol_loss(p, z) + simsiam_loss(p, z)).backward()
    assert z.grad is None and p.grad is not None


def test_barlow_twins_against_explicit_cross_correlation():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    n, d, eps, lambd, scale = 6, 3, 1e-5, 0.0051, 0.1

    def standardise(z):
        cols = []
        for j in range(d):
            col = [float(z[i, j]) for i in range(n)]
            mean = sum(col) / n
            var = sum((x - mean) ** 2 for x in col) / n
            cols.append([(x - mean) / math.sqrt(var + eps) for x in col])
        return cols  # cols[j][i]

    a, b = standardise(z1), standardise(z2)
    c = [[sum(a[i][k] * b[j][k] for k in range(n)) / n for j in range(d)] for i in range(d)]
    on = sum((1 - c[i][i]) ** 2 for i in range(d))
    off = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    assert barlow_twins_loss(z1, z2, lambd, scale).item() == pytest.approx(scale * (on + lambd * off), rel=1e-6)


def test_momentum_update_is_the_ema_of_parameters():
    online, target = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        target.weight.copy_(torch.tensor([[0.0, 0.0], [10.0, -10.0]]))
    momentum_update(online, target, tau=0.9)
    expected = torch.tensor([[0.1, 0.2], [9.0 + 0.3, -9.0 + 0.4]])
    assert torch.allclose(target.weight, expected, atol=1e-12)


def _method(name, **overrides):
    config = validate_config(
        {
            "datasets": {"d": {"source": "digits"}},
            "pretrain": {"dataset": "d", "batch_size": 4},
            "methods": {name: {"proj_hidden_dim": 8, "proj_output_dim": 4, **overrides}},
        }
    )
    backbone, dim = build_backbone({"name": "small_resnet", "width": 2, "blocks": [1], "small_stem": True})
    return build_method(name, backbone, dim, config["methods"][name])


def test_moco_queue_holds_the_latest_keys_and_wraps():
    torch.manual_seed(0)
    moco = _method("mocov2plus", queue_size=8)
    views = [torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)]
    moco(views, torch.arange(4))
    with torch.no_grad():
        k1 = nn.functional.normalize(moco.momentum_projector(moco.momentum_backbone(views[0])), dim=1)
    assert int(moco.queue_ptr) == 4
    assert torch.allclose(moco.queue[0, :, :4], k1.T, atol=1e-6)
    moco(views, torch.arange(4))
    moco(views, torch.arange(4))
    assert int(moco.queue_ptr) == 4  # 3 batches of 4 in a queue of 8: wrapped once


def test_momentum_methods_update_their_targets_on_a_cosine_schedule():
    torch.manual_seed(0)
    byol = _method("byol", pred_hidden_dim=8, base_tau=0.5, final_tau=1.0)
    before = byol.momentum_backbone.state_dict()["stem.0.weight"].clone()
    with torch.no_grad():
        for p in byol.backbone.parameters():
            p.add_(1.0)
    byol.after_step(1, total_steps=10)  # tau of step 0 = base_tau = 0.5
    after = byol.momentum_backbone.state_dict()["stem.0.weight"]
    online = byol.backbone.state_dict()["stem.0.weight"]
    assert torch.allclose(after, 0.5 * before + 0.5 * online)
    byol.after_step(11, total_steps=10)  # tau of step 10 = final_tau = 1.0: no change
    assert torch.allclose(byol.momentum_backbone.state_dict()["stem.0.weight"], after)


def test_simsiam_predictor_has_a_fixed_lr_group():
    groups = _method("simsiam", pred_hidden_dim=8).param_groups()
    assert groups[1][1] == {"fixed_lr": True}
    assert all(n.startswith("predictor.") for n, _ in groups[1][0])
    assert not any(n.startswith("predictor.") for n, _ in groups[0][0])


def test_every_two_view_method_returns_a_finite_scalar_loss_with_gradients():
    # DIET and S-DIET (one view, a run context) are covered in test_diet.py.
    for name in (n for n, cls in METHODS.items() if cls.n_views == 2):
        torch.manual_seed(0)
        extra = {"queue_size": 8} if name == "mocov2plus" else {}
        if name in ("byol", "simsiam"):
            extra["pred_hidden_dim"] = 8
        method = _method(name, **extra)
        loss = method([torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)], torch.arange(4))
        loss.backward()
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert method.backbone.stem[0].weight.grad.abs().sum() > 0, name


def test_unknown_method_and_backbone_list_the_valid_ones():
    with pytest.raises(
        ConfigError, match="unknown method 'swav'; known: barlowtwins, byol, diet, mocov2plus, sdiet, simclr, simsiam"
    ):
        build_method("swav", nn.Identity(), 4, {})
    with pytest.raises(ConfigError, match="unknown backbone 'vit'; known: resnet18, resnet50, small_resnet"):
        build_backbone({"name": "vit"})


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("resnet50", 2048)])
def test_torchvision_backbones_with_the_small_image_stem(name, dim):
    model, feature_dim = build_backbone({"name": name, "small_stem": True})
    assert feature_dim == dim
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity) and isinstance(model.fc, nn.Identity)
    model.eval()
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float32).to(torch.get_default_dtype())).shape == (2, dim)
    imagenet, _ = build_backbone({"name": name, "small_stem": False})
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)


def test_small_resnet_width_sets_the_feature_dimension():
    model, dim = build_backbone({"name": "small_resnet", "width": 8, "blocks": [1, 1, 1, 1]})
    assert dim == 64 and model(torch.randn(3, 3, 32, 32)).shape == (3, 64)


def test_cpu_sync_batchnorm_alone_is_batchnorm():
    bn = nn.Sequential(nn.BatchNorm2d(3))
    torch.manual_seed(0)
    with torch.no_grad():
        bn[0].weight.uniform_()
        bn[0].bias.uniform_()
    synced = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), "cpu")
    synced.load_state_dict(bn.state_dict())
    assert isinstance(synced[0], CPUSyncBatchNorm)
    x = torch.randn(4, 3, 5, 5)
    assert torch.allclose(bn(x), synced(x)) and torch.allclose(bn[0].running_var, synced[0].running_var)
