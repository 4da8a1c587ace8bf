import io
import itertools
import json
import math

import pytest
import torch

from genssl.errors import ConfigError
from genssl.optim import (
    LARS,
    WarmupCosine,
    build_optimizer,
    cosine_momentum,
    lr_factor,
    scaled_lr,
    split_decay_groups,
)

# --- LARS ----------------------------------------------------------------------------------------------------------


def _norm(xs):
    return math.sqrt(sum(x * x for x in xs))


def _lars_reference(p, grads, lr, momentum, wd, eta, eps=1e-8, clip_lr=False, exclude=False):
    """The documented LARS update on plain Python floats; returns the parameter after each step."""
    p, buf, out = list(p), None, []
    for g in grads:
        if exclude:
            d = list(g)
        elif _norm(p) != 0 and _norm(g) != 0:
            q = eta * _norm(p) / (_norm(g) + wd * _norm(p) + eps)
            if clip_lr:
                q = min(q / lr, 1.0)
            d = [(gi + wd * pi) * q for gi, pi in zip(g, p, strict=True)]
        else:
            d = [gi + wd * pi for gi, pi in zip(g, p, strict=True)]
        buf = d if buf is None else [momentum * b + di for b, di in zip(buf, d, strict=True)]
        p = [pi - lr * b for pi, b in zip(p, buf, strict=True)]
        out.append(p)
    return out


def _run(optimizer, params, grads_per_step):
    """Set each parameter's gradient and step; return the flattened values of ``params`` after each step."""
    out = []
    for grads in grads_per_step:
        for p, g in zip(params, grads, strict=True):
            p.grad = None if g is None else torch.tensor(g, dtype=torch.float64).reshape(p.shape)
        optimizer.step()
        out.append([p.detach().flatten().tolist() for p in params])
    return out


W0 = [1.0, 2.0, 3.0, 4.0]
B0 = [0.5, -0.5]
W_GRADS = [[0.1, -0.2, 0.3, 0.4], [-0.5, 0.25, 0.0, 1.0]]
B_GRADS = [[1.0, 2.0], [-3.0, 0.5]]


def _params():
    weight = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64).reshape(2, 2))
    bias = torch.nn.Parameter(torch.tensor(B0, dtype=torch.float64))
    return weight, bias


def test_lars_two_steps_match_the_hand_computation():
    weight, bias = _params()
    opt = LARS(
        [{"params": [weight]}, {"params": [bias], "weight_decay": 0.0, "exclude": True}],
        lr=0.5,
        momentum=0.9,
        weight_decay=0.1,
        eta=0.02,
    )
    got = _run(opt, [weight, bias], list(zip(W_GRADS, B_GRADS, strict=True)))

    # Step 1 by hand for the weight: ||p|| = sqrt(30), ||g|| = sqrt(0.3), q = 0.02 ||p|| / (||g|| + 0.1 ||p|| + eps).
    q1 = 0.02 * math.sqrt(30) / (math.sqrt(0.3) + 0.1 * math.sqrt(30) + 1e-8)
    w1 = [p - 0.5 * (g + 0.1 * p) * q1 for p, g in zip(W0, W_GRADS[0], strict=True)]
    assert got[0][0] == pytest.approx(w1, abs=1e-12)
    # The excluded bias: plain momentum SGD without weight decay, buf = g1 then 0.9 g1 + g2.
    assert got[0][1] == pytest.approx([0.5 - 0.5 * 1.0, -0.5 - 0.5 * 2.0], abs=1e-12)
    assert got[1][1] == pytest.approx([0.0 - 0.5 * (0.9 * 1.0 - 3.0), -1.5 - 0.5 * (0.9 * 2.0 + 0.5)], abs=1e-12)

    expected_w = _lars_reference(W0, W_GRADS, lr=0.5, momentum=0.9, wd=0.1, eta=0.02)
    for step in range(2):
        assert got[step][0] == pytest.approx(expected_w[step], abs=1e-12)
    assert torch.equal(
        opt.state[bias]["momentum_buffer"], torch.tensor([0.9 * 1.0 - 3.0, 0.9 * 2.0 + 0.5], dtype=torch.float64)
    )


@pytest.mark.parametrize("lr", [0.001, 5.0])  # q / lr > 1 (clipped to 1) and q / lr < 1 (kept)
def test_lars_clip_lr(lr):
    weight, _ = _params()
    opt = LARS([weight], lr=lr, momentum=0.9, weight_decay=0.1, eta=0.02, clip_lr=True)
    got = _run(opt, [weight], [[g] for g in W_GRADS])
    expected = _lars_reference(W0, W_GRADS, lr=lr, momentum=0.9, wd=0.1, eta=0.02, clip_lr=True)
    for step in range(2):
        assert got[step][0] == pytest.approx(expected[step], abs=1e-12)
    if lr == 0.001:  # clipped: the first step is plain SGD with weight decay
        assert got[0][0] == pytest.approx([p - lr * (g + 0.1 * p) for p, g in zip(W0, W_GRADS[0], strict=True)])


def test_lars_zero_norm_falls_back_to_sgd_with_weight_decay():
    zero_p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    weight, _ = _params()
    opt = LARS([zero_p, weight], lr=0.5, momentum=0.9, weight_decay=0.1, eta=0.02)
    got = _run(opt, [zero_p, weight], [([1.0, -2.0], [0.0, 0.0, 0.0, 0.0])])
    assert got[0][0] == pytest.approx([-0.5 * 1.0, -0.5 * -2.0], abs=1e-12)  # ||p|| = 0: d = g + 0.1 * 0
    assert got[0][1] == pytest.approx([p - 0.5 * 0.1 * p for p in W0], abs=1e-12)  # ||g|| = 0: d = 0.1 * p


def test_lars_skips_parameters_without_gradient():
    weight, bias = _params()
    opt = LARS([weight, bias], lr=0.5, weight_decay=0.1)
    got = _run(opt, [weight, bias], [(W_GRADS[0], None)])
    assert got[0][1] == B0
    assert bias not in opt.state
    assert got[0][0] != W0


def test_lars_state_dict_round_trip_continues_identically():
    def make():
        weight, bias = _params()
        groups = [{"params": [weight]}, {"params": [bias], "weight_decay": 0.0, "exclude": True}]
        return [weight, bias], LARS(groups, lr=0.5, momentum=0.9, weight_decay=0.1, eta=0.02)

    params, opt = make()
    _run(opt, params, [(W_GRADS[0], B_GRADS[0])])
    buffer = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_params, resumed = make()
    with torch.no_grad():
        for p, value in zip(resumed_params, saved["params"], strict=True):
            p.copy_(value)
    resumed.load_state_dict(saved["opt"])
    assert resumed.param_groups[1]["exclude"] is True

    original = _run(opt, params, [(W_GRADS[1], B_GRADS[1])])
    again = _run(resumed, resumed_params, [(W_GRADS[1], B_GRADS[1])])
    assert again == original


def test_lars_step_works_with_autograd_and_under_no_grad():
    model = torch.nn.Linear(3, 2)
    opt = LARS(model.parameters(), lr=0.1, weight_decay=1e-4)
    model(torch.ones(4, 3)).sum().backward()
    before = model.weight.detach().clone()
    with torch.no_grad():
        opt.step()
    assert not torch.equal(model.weight, before)


class _LoopLARS(torch.optim.Optimizer):
    """Reference: the LARS of genssl before the foreach rewrite, a Python loop of tensor ops per parameter."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, eta=0.02, eps=1e-8, clip_lr=False, exclude=False):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta, "eps": eps}
        super().__init__(params, {**defaults, "clip_lr": clip_lr, "exclude": exclude})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["exclude"]:
                    d = g.clone()
                else:
                    d = g.add(p, alpha=wd) if wd != 0 else g.clone()
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    q = group["eta"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                    if group["clip_lr"]:
                        q = torch.clamp(q / lr, max=1.0)
                    q = torch.where((p_norm != 0) & (g_norm != 0), q, torch.ones_like(q))
                    d.mul_(q)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d
                    else:
                        buf.mul_(momentum).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)


#: Shapes of a small network's tensors: conv and linear weights, biases and normalisation parameters.
SHAPES = [(8, 3, 3, 3), (8,), (8,), (16, 8, 3, 3), (16,), (10, 16), (10,), (5, 7)]


def _group_kinds(params):
    """One param group of every kind LARS knows, over consecutive slices of ``params``."""
    return [
        {"params": params[0:2]},  # regular
        {"params": params[2:4], "weight_decay": 0.0, "exclude": True},  # biases / norms
        {"params": params[4:5], "clip_lr": True, "lr": 0.002},  # q / lr clipped to 1
        {"params": params[5:6], "clip_lr": True, "lr": 5.0},  # q / lr kept
        {"params": params[6:7], "momentum": 0.0},  # no momentum buffer
        {"params": params[7:8], "weight_decay": 0.0},  # adapted, without weight decay
    ]


def _tensors(seed, zero=()):
    """Parameters of SHAPES (float32), those at the indices in ``zero`` initialised to zero."""
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.zeros(s) if i in zero else torch.randn(s, generator=gen)) for i, s in enumerate(SHAPES)
    ]


def _step_both(reference, ref_params, optimizer, params, gen, step, skip):
    """The same random gradients (none for the tensors in ``skip``, zero for tensor 3 at step 5) to both, written
    into the existing gradient tensors where there are some (as backward does), which a buffer must not share."""
    for i, (a, b) in enumerate(zip(ref_params, params, strict=True)):
        g = torch.randn(a.shape, generator=gen) * (0.0 if (i == 3 and step == 5) else 10.0 ** (i % 3 - 1))
        if i in skip:
            a.grad, b.grad = None, None
        elif a.grad is None:
            a.grad, b.grad = g.clone(), g.clone()
        else:
            a.grad.copy_(g)
            b.grad.copy_(g)
    reference.step()
    optimizer.step()


@pytest.mark.parametrize("zero", [(), (0, 2, 4, 7)], ids=["random-init", "zero-init"])
def test_foreach_lars_equals_the_loop_over_20_steps_for_every_group_kind(zero):
    ref_params, params = _tensors(0, zero), _tensors(0, zero)
    kwargs = {"lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4, "eta": 0.02}
    reference, optimizer = _LoopLARS(_group_kinds(ref_params), **kwargs), LARS(_group_kinds(params), **kwargs)
    gen = torch.Generator().manual_seed(1)
    for step in range(20):
        skip = {1, 5} if step in (0, 7) else set()  # a first step without gradient: buffers start at different steps
        _step_both(reference, ref_params, optimizer, params, gen, step, skip)
        for a, b in zip(ref_params, params, strict=True):
            assert torch.equal(a, b), f"step {step}: max diff {(a - b).abs().max():.3g}"
    for a, b in zip(ref_params, params, strict=True):
        assert set(reference.state[a]) == set(optimizer.state[b])
        if "momentum_buffer" in reference.state[a]:
            assert torch.equal(reference.state[a]["momentum_buffer"], optimizer.state[b]["momentum_buffer"])
    assert "momentum_buffer" not in optimizer.state[params[6]]


def test_foreach_lars_resumes_from_a_checkpoint_of_the_loop_lars():
    ref_params, params = _tensors(2), _tensors(2)
    kwargs = {"lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4}
    reference = _LoopLARS(_group_kinds(ref_params), **kwargs)
    gen = torch.Generator().manual_seed(3)
    for step in range(3):
        _step_both(reference, ref_params, torch.optim.SGD(params, lr=0.0), params, gen, step, set())
    optimizer = LARS(_group_kinds(params), **kwargs)
    with torch.no_grad():
        for a, b in zip(ref_params, params, strict=True):
            b.copy_(a)
    checkpoint = io.BytesIO()
    torch.save(reference.state_dict(), checkpoint)
    checkpoint.seek(0)
    optimizer.load_state_dict(torch.load(checkpoint, weights_only=True))
    for step in range(3, 8):
        _step_both(reference, ref_params, optimizer, params, gen, step, set())
    for a, b in zip(ref_params, params, strict=True):
        assert torch.equal(a, b)


def test_lars_step_waits_on_nothing_from_the_device():
    # On the meta device every read of a value on the host (item, bool, nonzero, tolist) raises.
    params = [torch.nn.Parameter(torch.empty(s, device="meta")) for s in SHAPES]
    for p in params:
        p.grad = torch.empty_like(p)
    optimizer = LARS(_group_kinds(params), lr=0.3, weight_decay=1e-4)
    optimizer.step()
    optimizer.step()
    assert optimizer.state[params[0]]["momentum_buffer"].device.type == "meta"


# --- build ---------------------------------------------------------------------------------------------------------


def _model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))


def test_split_decay_groups_excludes_biases_and_norm_params():
    model = _model()
    regular, excluded = split_decay_groups(model.named_parameters())
    conv, bn, linear = model
    assert [id(p) for p in regular] == [id(conv.weight), id(linear.weight)]
    assert [id(p) for p in excluded] == [id(conv.bias), id(bn.weight), id(bn.bias), id(linear.bias)]


@pytest.mark.parametrize(("name", "cls"), [("sgd", torch.optim.SGD), ("lars", LARS), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    model = _model()
    head = torch.nn.Linear(2, 2)
    opt = build_optimizer(
        model.named_parameters(),
        name,
        lr=0.6,
        weight_decay=1e-4,
        momentum=0.8,
        betas=(0.8, 0.99),
        extra_groups=[{"params": head.parameters(), "lr": 0.1, "weight_decay": 0.0}],
    )
    assert type(opt) is cls
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0, 0.0]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.6, 0.6, 0.1]
    assert [g["lr"] for g in opt.param_groups] == [0.6, 0.6, 0.1]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 4, 2]
    if name == "lars":
        assert [g["exclude"] for g in opt.param_groups] == [False, True, False]
        assert opt.param_groups[0]["eta"] == 0.02
    else:
        assert all("exclude" not in g for g in opt.param_groups)
    if name == "adamw":
        assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    else:
        assert opt.param_groups[0]["momentum"] == 0.8
    if name != "lars":  # PyTorch's multi-tensor implementation, not its loop over parameters
        assert opt.param_groups[0]["foreach"] is True and not opt.param_groups[0]["fused"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["sgd", "adamw", "lars"])
def test_cuda_optimizers_are_fused_and_step_without_host_synchronisation(name):
    model = _model().cuda().to(memory_format=torch.channels_last)
    opt = build_optimizer(model.named_parameters(), name, lr=0.1, weight_decay=1e-4)
    if name != "lars":
        assert opt.param_groups[0]["fused"] is True
    for _ in range(2):  # the first step creates the state, the second updates it
        model(torch.randn(2, 3, 6, 6, device="cuda")).sum().backward()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            opt.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_build_optimizer_without_exclusion_and_with_default_extra_group_values():
    model = _model()
    extra = {"params": [torch.nn.Parameter(torch.zeros(3))], "fixed_lr": True}
    opt = build_optimizer(
        model.named_parameters(), "sgd", lr=0.3, weight_decay=1e-5, exclude_bias_n_norm=False, extra_groups=[extra]
    )
    assert [len(g["params"]) for g in opt.param_groups] == [6, 1]
    assert [(g["lr"], g["weight_decay"], g["initial_lr"]) for g in opt.param_groups] == [(0.3, 1e-5, 0.3)] * 2
    assert opt.param_groups[1]["fixed_lr"] is True
    assert "initial_lr" not in extra  # the caller's dict is left alone


def test_unknown_optimizer_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adam'; known: adamw, lars, sgd"):
        build_optimizer(_model().named_parameters(), "adam", lr=0.1, weight_decay=0.0)


def test_scaled_lr():
    assert scaled_lr(0.3, 512) == 0.6
    assert scaled_lr(1.0, 128) == 0.5


# --- schedule ------------------------------------------------------------------------------------------------------


def test_lr_factor_warmup_and_cosine():
    t, w, s, m = 100, 10, 0.1, 0.01
    assert lr_factor(0, t, w, s, m) == 0.1
    assert lr_factor(4, t, w, s, m) == pytest.approx(0.1 + 0.9 * 4 / 10)
    assert lr_factor(10, t, w, s, m) == 1.0
    assert lr_factor(40, t, w, s, m) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 30 / 90)))
    assert lr_factor(55, t, w, s, m) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(100, t, w, s, m) == 0.01
    assert lr_factor(250, t, w, s, m) == 0.01
    assert lr_factor(0, 10, 0) == 1.0  # no warm-up
    assert lr_factor(10, 10, 0) == 0.0
    factors = [lr_factor(i, t, w, s, m) for i in range(t + 1)]
    assert all(a < b for a, b in itertools.pairwise(factors[: w + 1]))  # rising warm-up
    assert all(a > b for a, b in itertools.pairwise(factors[w:]))  # falling cosine


@pytest.mark.parametrize(("step", "total", "warmup"), [(-1, 10, 2), (0, 0, 0), (0, 10, 11), (0, 10, -1)])
def test_lr_factor_rejects_bad_arguments(step, total, warmup):
    with pytest.raises(ValueError):
        lr_factor(step, total, warmup)


def test_warmup_cosine_sets_every_group_and_resumes():
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.4}, {"params": [b], "lr": 0.04}, {"params": [c], "lr": 0.2}], lr=1)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    opt.param_groups[2]["fixed_lr"] = True
    sched = WarmupCosine(total_steps=20, warmup_steps=4, warmup_start=0.25, min_factor=0.0)

    assert sched.set_step(opt, 0) == 0.25
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.01, 0.2])
    sched.set_step(opt, 12)
    f = 0.5 * (1 + math.cos(math.pi * 8 / 16))
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.4 * f, 0.04 * f, 0.2])

    state = json.loads(json.dumps(sched.state_dict()))
    assert state == {"total_steps": 20, "warmup_steps": 4, "warmup_start": 0.25, "min_factor": 0.0, "last_step": 12}
    resumed = WarmupCosine(total_steps=1, warmup_steps=0)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == sched.state_dict()
    assert [resumed.factor(i) for i in range(13, 25)] == [sched.factor(i) for i in range(13, 25)]
    resumed.set_step(opt, 20)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0, 0.2]


def test_warmup_cosine_records_initial_lr_when_missing():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    sched = WarmupCosine(total_steps=10, warmup_steps=2)
    sched.set_step(opt, 1)
    sched.set_step(opt, 2)
    assert opt.param_groups[0]["initial_lr"] == 0.5
    assert opt.param_groups[0]["lr"] == 0.5


def test_cosine_momentum():
    assert cosine_momentum(0, 100, 0.996, 1.0) == 0.996
    assert cosine_momentum(50, 100, 0.996, 1.0) == pytest.approx(0.998)
    assert cosine_momentum(25, 100, 0.99, 1.0) == pytest.approx(1.0 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_momentum(100, 100, 0.996, 1.0) == 1.0
    assert cosine_momentum(150, 100, 0.996, 1.0) == 1.0


def test_decay_groups_carry_options_and_exclude_norms_for_lars():
    from genssl.optim import decay_groups

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    groups = decay_groups(model.named_parameters(), "lars", 0.1, fixed_lr=True)
    assert [len(g["params"]) for g in groups] == [1, 3]
    assert groups[0] == {"params": [model[0].weight], "weight_decay": 0.1, "fixed_lr": True}
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["exclude"] is True and groups[1]["fixed_lr"] is True
    assert "exclude" not in decay_groups(model.named_parameters(), "sgd", 0.1)[1]
    assert len(decay_groups(model.named_parameters(), "sgd", 0.1, exclude_bias_n_norm=False)) == 1


@pytest.mark.parametrize("clip_lr", [False, True])
def test_clip_lr_reaches_lars_from_the_method_config(clip_lr):
    """methods.X.clip_lr (beside eta) is the LARS option of every param group the trainer builds."""
    from genssl.config import validate_config
    from genssl.methods import build_method
    from genssl.models import build_backbone
    from genssl.train.trainer import method_optimizer

    config = validate_config(
        {
            "datasets": {"d": {"source": "digits"}},
            "pretrain": {"dataset": "d", "backbone": {"width": 4, "blocks": [1]}},
            "methods": {"simsiam": {"optimizer": "lars", "eta": 0.001, "clip_lr": clip_lr}},
        }
    )
    mcfg = config["methods"]["simsiam"]
    method = build_method("simsiam", *build_backbone(config["pretrain"]["backbone"]), mcfg)
    optimizer = method_optimizer(method, mcfg, 0.1)
    assert isinstance(optimizer, LARS)
    assert {(g["clip_lr"], g["eta"]) for g in optimizer.param_groups} == {(clip_lr, 0.001)}
    assert any(g.get("fixed_lr") for g in optimizer.param_groups)  # the predictor's group too
