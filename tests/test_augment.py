import dataclasses
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
import yaml
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.transforms import RandomResizedCrop

from genssl.augment import BatchAugment, ViewSpec, blur_kernel_size, ops, pipeline, view_specs
from genssl.augment.params import draw_view_params, pack_params, param_layout, unpack_params
from genssl.config import load_schema, validate_config
from genssl.errors import ConfigError

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
#: Every op off, the crop the whole image: the pipeline is just the normalisation.
PLAIN = ViewSpec(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def _views(method: str) -> dict:
    """The resolved `views` block of a method with the schema's defaults (symmetric simclr, asymmetric byol)."""
    config = {"datasets": {"d": {"source": "digits"}}, "pretrain": {"dataset": "d"}, "methods": {method: {}}}
    return validate_config(config)["methods"][method]["views"]


def test_view_spec_defaults_are_the_schemas():
    schema = load_schema()["$defs"]
    defaults = {
        k: v["default"]
        for block in ("views_common", "views_asymmetric")
        for k, v in schema[block]["properties"].items()
        if "default" in v and k not in ("blur_p", "solarize_p")
    }
    assert {"crop_scale", "flip_p", "brightness", "saturation", "hue", "solarize_threshold"} <= set(defaults)
    spec = ViewSpec()
    for key, value in defaults.items():
        assert getattr(spec, key) == (tuple(value) if isinstance(value, list) else value), key


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 (n, size, size, 3), as read from a store."""
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float() / 255


# --- the pipeline: shapes, normalisation, determinism -------------------------------------------------------------


def test_identity_pipeline_is_exactly_the_normalisation():
    images = _images(5, 24)
    views = BatchAugment([PLAIN, PLAIN], out_size=24)(images, _gen())
    expected = (_unit(images) - MEAN) / STD
    assert len(views) == 2
    for v in views:
        assert v.shape == (5, 3, 24, 24) and v.dtype == torch.float32 and v.device == images.device
        assert v.is_contiguous()
        torch.testing.assert_close(v, expected, rtol=0, atol=1e-6)


def test_output_shape_and_custom_normalisation():
    images = _images(3, 20)
    spec = dataclasses.replace(PLAIN, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3))
    views = BatchAugment([spec], out_size=11, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(images, _gen())
    assert views[0].shape == (3, 3, 11, 11)
    assert views[0].min() >= 0 and views[0].max() <= 1


def test_same_seed_same_views_other_seed_other_views():
    augment = BatchAugment(view_specs(_views("byol")), out_size=16)
    images = _images(8, 20)
    first, second = augment(images, _gen(1)), augment(images, _gen(1))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    other = augment(images, _gen(2))
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[1], other[1])
    assert not torch.equal(first[0], first[1])  # the two views differ


def test_views_ignore_global_random_state_and_layout():
    augment = BatchAugment(view_specs(_views("byol")), out_size=16)
    images = _images(8, 20)
    torch.manual_seed(0)
    channels_last = augment(images, _gen(3))
    torch.manual_seed(1)
    torch.rand(7)
    channels_first = augment(images.permute(0, 3, 1, 2).contiguous(), _gen(3))
    for a, b in zip(channels_last, channels_first, strict=True):
        assert torch.equal(a, b)


def test_views_run_under_deterministic_algorithms():
    augment = BatchAugment(view_specs(_views("byol")), out_size=16)
    images = _images(8, 20)
    expected = augment(images, _gen(4))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        views = augment(images, _gen(4))
    finally:
        torch.use_deterministic_algorithms(previous)
    for a, b in zip(expected, views, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    augment = BatchAugment(view_specs(_views("byol")), out_size=24)
    images = _images(16, 32)
    cpu = augment(images, _gen(5))
    cuda = augment(images.cuda(), _gen(5))
    for a, b in zip(cpu, cuda, strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-4)


def test_view_parameters_keep_their_stream_layout():
    # The draws of every view, in this order, whatever the probabilities: a fixed random stream layout.
    spec = ViewSpec(blur_p=0.5, solarize_p=0.2)
    drawn = _gen(20)
    params = draw_view_params(50, 20, 30, spec, 16, drawn)
    gen = _gen(20)
    boxes = ops.sample_crop_boxes(50, 20, 30, spec.crop_scale, spec.crop_ratio, gen)
    u = torch.rand((50, 5), generator=gen, dtype=torch.float64)
    v = torch.rand((50, 4), generator=gen, dtype=torch.float64)
    order = torch.argsort(torch.rand((50, 4), generator=gen), dim=1)
    w = torch.rand(50, generator=gen, dtype=torch.float64)
    assert torch.equal(torch.rand(3, generator=drawn), torch.rand(3, generator=gen))  # nothing else drawn
    assert torch.equal(params.boxes, boxes) and torch.equal(params.order, order)
    coins = [params.flip, params.jitter, params.gray, params.blur, params.solarize]
    for coin, column, p in zip(coins, u.unbind(1), (0.5, 0.8, 0.2, 0.5, 0.2), strict=True):
        assert torch.equal(coin, column < p)
    low = torch.tensor([1 - 0.4, 1 - 0.4, 1 - 0.2, -0.1], dtype=torch.float64)
    high = torch.tensor([1 + 0.4, 1 + 0.4, 1 + 0.2, 0.1], dtype=torch.float64)
    assert torch.equal(params.factors, (low + (high - low) * v).float())
    lo, hi = 0.1 * 16 / 224, 2.0 * 16 / 224
    assert torch.equal(params.sigma, lo + (hi - lo) * w)


def _reference_view(image: torch.Tensor, params, i: int, spec: ViewSpec, size: int, kernel_size: int):
    """View ``i`` of ``params`` made from torchvision's functional ops on one float image (3, H, W)."""
    top, left, h, w = params.boxes[i].tolist()
    x = TF.resized_crop(image, top, left, h, w, [size, size], antialias=False)
    if params.flip[i]:
        x = TF.horizontal_flip(x)
    if params.jitter[i]:
        adjust = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        for op in params.order[i].tolist():
            if op != ops.HUE or params.factors[i, op] != 0:
                x = adjust[op](x, float(params.factors[i, op]))
    if params.gray[i]:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1)
    if params.blur[i]:
        x = TF.gaussian_blur(x, [kernel_size, kernel_size], [float(params.sigma[i])] * 2)
    if params.solarize[i]:
        x = TF.solarize(x, spec.solarize_threshold)
    return TF.normalize(x, list(MEAN.flatten().tolist()), list(STD.flatten().tolist()))


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_views_equal_torchvision_ops_with_the_drawn_parameters(method):
    n, size = 40, 16
    specs = view_specs(_views(method))
    images = _images(n, 24, seed=21)
    views = BatchAugment(specs, out_size=size)(images, _gen(22))
    gen = _gen(22)
    for spec, view in zip(specs, views, strict=True):
        params = draw_view_params(n, 24, 24, spec, size, gen)
        k = blur_kernel_size(spec, size)
        expected = torch.stack([_reference_view(_unit(images)[i], params, i, spec, size, k) for i in range(n)])
        torch.testing.assert_close(view, expected, rtol=0, atol=3e-5)


def test_views_wait_on_nothing_from_the_device():
    # On the meta device every read of a value on the host (item, bool, nonzero, tolist, .cpu()) raises.
    specs = [*view_specs(_views("byol")), ViewSpec(jitter_p=0.5, grayscale_p=0.5, blur_p=0.5, solarize_p=0.5)]
    images = torch.empty((6, 20, 20, 3), dtype=torch.uint8, device="meta")
    for view in BatchAugment(specs, out_size=12)(images, _gen()):
        assert view.device.type == "meta" and view.shape == (6, 3, 12, 12)


def test_view_params_are_one_buffer_with_the_drawn_values():
    spec = ViewSpec(blur_p=0.5, solarize_p=0.3)
    params = draw_view_params(30, 20, 20, spec, 12, _gen(23))
    layout = param_layout([spec], 12, [5])
    packed = pack_params(params, spec, 12, 5, layout)
    assert packed.dtype == torch.float32 and packed.shape == (30, 4 * 12 + 2 * 12 + 6 * 3 + 1 + 1 + 1 + 5 + 1)
    moved = unpack_params(packed, layout)
    index, frac = ops.crop_taps(params.boxes, 12, params.flip)
    assert torch.equal(moved.index, index) and moved.index.dtype == torch.int64 and torch.equal(moved.frac, frac)
    slots, hue_on = ops.jitter_slots(params.factors, params.order, params.jitter)
    assert torch.equal(moved.slots, slots) and torch.equal(moved.hue_on, hue_on.float())
    assert torch.equal(moved.hue, params.factors[:, ops.HUE]) and torch.equal(moved.gray, params.gray.float())
    assert torch.equal(moved.solarize, torch.where(params.solarize, 0.5, math.inf).float())
    assert torch.equal(moved.kernels, ops.gaussian_kernels(params.sigma, 5, params.blur).float())
    storages = {t.untyped_storage().data_ptr() for t in moved[1:] if t is not None}
    assert storages == {packed.untyped_storage().data_ptr()}  # all floats are views of one buffer: one copy
    plain = unpack_params(
        pack_params(params, PLAIN, 12, 5, param_layout([PLAIN], 12, [5])), param_layout([PLAIN], 12, [5])
    )
    assert plain.slots is None and plain.hue is None and plain.gray is None and plain.kernels is None
    assert plain.solarize is None and torch.equal(plain.index, index)


def test_a_view_packed_with_ops_it_lacks_gets_their_identities():
    """In the layout of views with more ops (hue, grayscale, a longer blur kernel, solarize), a view's missing ops
    are identities and its own blur kernel is padded with zeros."""
    rich = ViewSpec(blur_p=0.5, blur_sigma=(0.1, 4.0), solarize_p=0.3)
    poor = ViewSpec(hue=0.0, grayscale_p=0.0, blur_p=1.0)
    k_rich, k_poor = blur_kernel_size(rich, 24), blur_kernel_size(poor, 24)
    layout = param_layout([rich, poor], 24, [k_rich, k_poor])
    assert layout["kernels"] == (k_rich,) and k_rich > k_poor
    params = draw_view_params(8, 30, 30, poor, 24, _gen(9))
    moved = unpack_params(pack_params(params, poor, 24, k_poor, layout), layout)
    own, _ = ops.jitter_slots(params.factors, params.order, params.jitter, hue=False)
    assert torch.equal(moved.slots[:, :3], own) and (moved.slots[:, 3:] == torch.tensor([1.0, 0.0, 0.0])).all()
    assert (moved.hue == 0).all() and (moved.hue_on == 0).all() and (moved.gray == 0).all()
    assert (moved.solarize == math.inf).all()
    pad = (k_rich - k_poor) // 2
    assert (moved.kernels[:, :pad] == 0).all() and (moved.kernels[:, -pad:] == 0).all()
    assert torch.equal(moved.kernels[:, pad:-pad], ops.gaussian_kernels(params.sigma, k_poor, params.blur).float())


def test_the_views_run_as_one_pass_that_equals_each_view_alone():
    """V views of B images run as one batch of V B samples: each view equals the view run alone with the same
    draws (bit for bit where the views share their ops; here too, within 1e-6 where they do not), and the pass
    dispatches the ops of one view, not V times as many."""
    specs = [
        ViewSpec(blur_p=1.0, solarize_p=0.0),
        ViewSpec(blur_p=0.1, solarize_p=0.2),
        ViewSpec(hue=0.0, grayscale_p=0.0, blur_p=0.5, blur_sigma=(0.1, 4.0)),
        ViewSpec(jitter_p=0.0, flip_p=1.0),
    ]
    images = _images(6, 28)
    views = BatchAugment(specs, out_size=24)(images, _gen(12))
    rng = _gen(12)
    for view, spec in zip(views, specs, strict=True):
        (alone,) = BatchAugment([spec], out_size=24)(images, rng)
        assert view.is_contiguous()
        torch.testing.assert_close(view, alone, rtol=0, atol=1e-6)
    byol, rng = view_specs(_views("byol")), _gen(13)
    for view, spec in zip(BatchAugment(byol, out_size=24)(images, _gen(13)), byol, strict=True):
        assert torch.equal(view, BatchAugment([spec], out_size=24)(images, rng)[0])

    class Dispatched(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Dispatched.count += 1
            return func(*args, **(kwargs or {}))

    counts = []
    for n_views in (1, 2, 4):
        augment = BatchAugment([specs[0]] * n_views, out_size=24)
        params = augment.draw(6, 28, 28, _gen(1))
        Dispatched.count = 0
        with Dispatched():
            augment.apply(images, params)
        counts.append(Dispatched.count)
    assert counts[1] == counts[2] <= counts[0] + 1, counts  # + 1: the copy that stacks the views' sources


def test_cpu_passes_give_the_values_of_one_pass(monkeypatch):
    """On the CPU the V B samples run in cache-sized passes; passes that split a view give the same bytes."""
    augment = BatchAugment([*view_specs(_views("byol")), ViewSpec(hue=0.0, blur_p=0.3)], out_size=16)
    images, params = _images(6, 20), augment.draw(6, 20, 20, _gen(4))
    whole = augment.apply(images, params)
    monkeypatch.setattr(pipeline, "CPU_PASS_BYTES", 5 * 3 * 16 * 16 * 4)  # passes of 5 of the 18 samples
    for a, b in zip(augment.apply(images, params), whole, strict=True):
        assert torch.equal(a, b) and a.is_contiguous()


def test_the_parameters_of_every_view_are_drawn_in_one_buffer_that_may_be_drawn_elsewhere():
    """draw + apply equals the call with the generator, also with the buffer drawn in another process (a loader
    worker gets a pickled copy of the draws)."""
    augment = BatchAugment([*view_specs(_views("byol")), ViewSpec(hue=0.0, blur_p=0.3)], out_size=12)
    images = _images(7, 20)
    packed = augment.draw(7, 20, 20, _gen(31))
    assert packed.shape[0] == 3 * 7 and packed.device.type == "cpu"
    assert torch.equal(pickle.loads(pickle.dumps(augment.draws)).draw(7, 20, 20, _gen(31)), packed)
    for a, b in zip(augment.apply(images, packed), augment(images, _gen(31)), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"view parameters of 21 samples for 3 views of 6 images"):
        augment.apply(images[:6], packed)
    with pytest.raises(ValueError, match=r"view parameters of shape \(21, 3\)"):
        augment.apply(images, packed[:, :3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_views_do_not_synchronise_with_the_host():
    augment = BatchAugment(view_specs(_views("byol")), out_size=24)
    images = _images(16, 32).cuda()
    augment(images, _gen(5))  # warm-up: pinned host memory, kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        views = augment(images, _gen(6))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for a, b in zip(views, augment(images.cpu(), _gen(6)), strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_compiled_views_equal_the_eager_ones():
    specs = [ViewSpec(blur_p=0.5, solarize_p=0.5)]  # every op
    eager, compiled = BatchAugment(specs, out_size=8), BatchAugment(specs, out_size=8, compile=True)
    for n in (6, 5):  # a second batch size, as the last batch of an epoch: compiled again
        images = _images(n, 10)
        for a, b in zip(eager(images, _gen(n)), compiled(images, _gen(n)), strict=True):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_float_images_are_taken_as_unit_range():
    images = _images(4, 20)
    augment = BatchAugment(view_specs(_views("simclr")), out_size=12)
    from_uint8 = augment(images, _gen(6))
    from_float = augment(_unit(images), _gen(6))
    for a, b in zip(from_uint8, from_float, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_ops_with_probability_0_are_not_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an op with probability 0 ran")

    for name in ("apply_jitter", "adjust_hue", "grayscale", "separable_blur", "solarize"):
        monkeypatch.setattr(ops, name, refuse)
    (view,) = BatchAugment([ViewSpec(flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)], out_size=8)(_images(4, 10), _gen())
    assert view.shape == (4, 3, 8, 8)


def test_bad_image_shapes_are_refused():
    augment = BatchAugment([PLAIN], out_size=8)
    with pytest.raises(ValueError, match="expected images"):
        augment(torch.zeros(2, 8, 8, 4, dtype=torch.uint8), _gen())
    with pytest.raises(ValueError, match="expected images"):
        augment(torch.zeros(8, 8, 3, dtype=torch.uint8), _gen())


# --- random resized crop ------------------------------------------------------------------------------------------


def test_crop_boxes_respect_scale_ratio_and_bounds():
    height, width, scale, ratio = 40, 60, (0.08, 1.0), (3 / 4, 4 / 3)
    top, left, h, w = ops.sample_crop_boxes(4000, height, width, scale, ratio, _gen()).unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    assert (h > 0).all() and (w > 0).all()
    # w, h are sqrt(a r), sqrt(a / r) rounded: each off by at most 1/2.
    area, slack = (h * w).double(), 0.5 * (h + w).double() + 0.75
    assert (area >= scale[0] * height * width - slack).all() and (area <= scale[1] * height * width + slack).all()
    assert ((w - 0.5) / (h + 0.5) <= ratio[1]).all() and ((w + 0.5) / (h - 0.5) >= ratio[0]).all()
    # Both ends of the ranges are reached.
    # (An area above 0.89 A needs a ratio of 1.5 on this 60 x 40 image: out of range, so never drawn.)
    assert (area / (height * width)).min() < 0.1 and (area / (height * width)).max() > 0.85
    assert (w / h).min() < 0.8 and (w / h).max() > 1.25


def test_crop_box_positions_are_uniform():
    top, left, h, w = ops.sample_crop_boxes(4000, 40, 40, (0.25, 0.25), (1.0, 1.0), _gen()).unbind(1)
    assert (h == 20).all() and (w == 20).all()
    for pos in (top, left):
        counts = torch.bincount(pos, minlength=21)
        assert counts.numel() == 21 and counts.min() > 4000 / 21 * 0.6  # every offset 0..20 occurs


def test_crop_box_fallback_is_torchvisions_central_crop():
    image = torch.zeros(3, 30, 30)
    # No attempt fits (w = sqrt(900 * 2) > 30): the centre crop clamped to the ratio.
    expected = RandomResizedCrop.get_params(image, scale=[1.0, 1.0], ratio=[2.0, 2.0])
    boxes = ops.sample_crop_boxes(5, 30, 30, (1.0, 1.0), (2.0, 2.0), _gen())
    assert expected == (7, 0, 15, 30)
    assert (boxes == torch.tensor(expected)).all()


def test_crop_of_a_box_its_own_size_reproduces_its_pixels():
    n, size, box = 6, 40, 13
    i = torch.arange(size, dtype=torch.float32)
    # Pixel (c, i, j) of image b holds 10^6 b + 10^4 c + 100 i + j: any misplaced pixel shows.
    coded = (
        1e6 * torch.arange(n).view(n, 1, 1, 1) + 1e4 * torch.arange(3).view(1, 3, 1, 1) + 100 * i.view(-1, 1) + i
    ).float()
    tops, lefts = torch.randint(0, size - box + 1, (2, n), generator=_gen())
    boxes = torch.stack([tops, lefts, torch.full((n,), box), torch.full((n,), box)], dim=1)
    out = ops.resized_crop(coded, boxes, box)
    for b in range(n):
        assert torch.equal(out[b], coded[b, :, tops[b] : tops[b] + box, lefts[b] : lefts[b] + box])
    flipped = ops.resized_crop(coded, boxes, box, flip=torch.tensor([True, False] * 3))
    assert torch.equal(flipped[0::2], out[0::2].flip(-1)) and torch.equal(flipped[1::2], out[1::2])


def test_resized_crop_matches_interpolate_of_the_crop():
    images = _images(8, 37).permute(0, 3, 1, 2)
    boxes = torch.tensor(
        [
            [0, 0, 37, 37],
            [3, 5, 10, 20],
            [10, 2, 27, 33],
            [30, 30, 7, 7],
            [0, 20, 37, 17],
            [5, 0, 3, 37],
            [1, 1, 30, 30],
            [12, 9, 1, 1],
        ]
    )
    for out_size in (16, 24, 45):
        out = ops.resized_crop(images, boxes, out_size)
        assert out.shape == (8, 3, out_size, out_size) and out.dtype == torch.float32
        for b, (top, left, h, w) in enumerate(boxes.tolist()):
            crop = images[b : b + 1, :, top : top + h, left : left + w].float() / 255
            expected = F.interpolate(crop, size=(out_size, out_size), mode="bilinear", align_corners=False)
            # interpolate places its taps in float32, resized_crop in float64: a few 1e-6 apart at most.
            torch.testing.assert_close(out[b : b + 1], expected, rtol=0, atol=1e-5)


# --- flip, grayscale, solarize ------------------------------------------------------------------------------------


def test_flip_p_1_mirrors_every_image():
    images = _images(4, 16)
    spec = dataclasses.replace(PLAIN, flip_p=1.0)
    (out,) = BatchAugment([spec], out_size=16)(images, _gen())
    (plain,) = BatchAugment([PLAIN], out_size=16)(images, _gen())
    assert torch.equal(out, plain.flip(-1))


def test_grayscale_is_the_601_luma_in_three_channels():
    x = torch.rand(4, 3, 6, 6)
    mask = torch.tensor([True, False, True, False])
    out = ops.grayscale(x, mask)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(out[mask, c], luma[mask], rtol=0, atol=1e-6)
    assert torch.equal(out[~mask], x[~mask])
    assert torch.equal(ops.grayscale(x, mask.float()), out)  # weights 0 / 1 select exactly, as the mask
    # Through the pipeline with p = 1: every sample grey.
    images = _images(3, 8)
    (view,) = BatchAugment([dataclasses.replace(PLAIN, grayscale_p=1.0)], out_size=8)(images, _gen())
    unit = view * STD + MEAN
    expected = (0.299 * _unit(images)[:, 0] + 0.587 * _unit(images)[:, 1] + 0.114 * _unit(images)[:, 2]).unsqueeze(1)
    torch.testing.assert_close(unit, expected.expand_as(unit), rtol=0, atol=1e-5)


def test_solarize_inverts_above_the_threshold():
    x = torch.rand(4, 3, 6, 6)
    x[0, 0, 0, :3] = torch.tensor([0.3, 0.0, 1.0])  # at the threshold, and the ends
    torch.testing.assert_close(ops.solarize(x, 0.3), TF.solarize(x, 0.3), rtol=0, atol=0)
    per_sample = torch.tensor([0.3, 0.7, math.inf, 0.3])  # inf: left alone
    out = ops.solarize(x, per_sample)
    for i, t in enumerate(per_sample.tolist()):
        assert torch.equal(out[i], torch.where(x[i] >= t, 1 - x[i], x[i]))
    assert torch.equal(out[2], x[2])


# --- colour jitter against torchvision ----------------------------------------------------------------------------


def _per_sample_reference(x: torch.Tensor, fn, factors: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(x[i], float(factors[i])) for i in range(x.shape[0])])


@pytest.mark.parametrize(
    ("op", "reference", "low", "high", "atol"),
    [(ops.adjust_hue, TF.adjust_hue, -0.5, 0.5, 1e-5)],
)
def test_jitter_ops_match_torchvision(op, reference, low, high, atol):
    x = torch.rand(12, 3, 9, 9, generator=_gen(7))
    x[0] = 0.5  # grey: no hue
    x[1, 0] = x[1, 1]  # ties between channels
    factors = low + (high - low) * torch.rand(12, generator=_gen(8))
    torch.testing.assert_close(op(x, factors), _per_sample_reference(x, reference, factors), rtol=0, atol=atol)


def test_color_jitter_applies_the_ops_in_each_samples_order():
    n = 24
    x = torch.rand(n, 3, 8, 8, generator=_gen(9))
    u = torch.rand(n, 4, generator=_gen(10))
    factors = torch.cat([0.6 + 0.8 * u[:, :3], 0.2 * u[:, 3:] - 0.1], dim=1)
    factors[0, ops.HUE] = 0.0  # a zero hue factor skips the op
    order = torch.stack([torch.randperm(4, generator=_gen(i)) for i in range(n)])
    before = x.clone()
    out = ops.color_jitter(x, factors, order)
    assert torch.equal(x, before)  # the input is not modified
    functions = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(n):
        expected = x[i]
        for op in order[i].tolist():
            expected = functions[op](expected, float(factors[i, op]))
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-5)


def test_color_jitter_leaves_the_samples_not_chosen_exactly_alone():
    n = 8
    x = torch.rand(n, 3, 5, 5, generator=_gen(16))
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.05]] * n)
    order = torch.stack([torch.randperm(4, generator=_gen(i)) for i in range(n)])
    chosen = torch.tensor([True, False] * 4)
    out = ops.color_jitter(x, factors, order, chosen)
    assert torch.equal(out[~chosen], x[~chosen])
    torch.testing.assert_close(out[chosen], ops.color_jitter(x[chosen], factors[chosen], order[chosen]), rtol=0, atol=0)


def test_jitter_slots_split_the_blends_around_the_hue_op():
    b, c, s, h = ops.BRIGHTNESS, ops.CONTRAST, ops.SATURATION, ops.HUE
    factors = torch.tensor([[1.1, 0.9, 0.8, 0.1], [1.1, 0.9, 0.8, 0.1], [1.1, 0.9, 0.8, 0.0]])
    order = torch.tensor([[b, h, c, s], [h, s, b, c], [s, c, b, h]])
    slots, hue_on = ops.jitter_slots(factors, order, chosen=torch.tensor([True, True, False]))
    one = [1.0, 0.0, 0.0]
    bright, contrast, saturation = [1.1, 0.0, 0.0], [0.9, 0.0, 0.1], [0.8, 0.2, 0.0]
    expected = [
        [bright, one, one, one, contrast, saturation],  # b | hue | c, s
        [one, one, one, saturation, bright, contrast],  # hue | s, b, c
        [one] * 6,  # not chosen
    ]
    torch.testing.assert_close(slots, torch.tensor(expected), rtol=0, atol=1e-7)
    assert hue_on.tolist() == [True, True, False]
    without_hue, _ = ops.jitter_slots(factors, order, hue=False)
    torch.testing.assert_close(without_hue[0], torch.tensor([bright, contrast, saturation]), rtol=0, atol=1e-7)
    torch.testing.assert_close(without_hue[2], torch.tensor([saturation, contrast, bright]), rtol=0, atol=1e-7)


def test_pipeline_brightness_factors_span_their_range():
    spec = dataclasses.replace(PLAIN, jitter_p=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0)
    images = torch.full((500, 4, 4, 3), 100, dtype=torch.uint8)  # 100 * 1.4 < 255: never clamped
    (view,) = BatchAugment([spec], out_size=4)(images, _gen(15))
    factor = (view * STD + MEAN) / (100 / 255)
    per_sample = factor.mean(dim=(1, 2, 3))
    torch.testing.assert_close(factor, per_sample.view(-1, 1, 1, 1).expand_as(factor), rtol=0, atol=1e-5)
    assert per_sample.min() >= 0.6 - 1e-5 and per_sample.max() <= 1.4 + 1e-5
    assert per_sample.min() < 0.62 and per_sample.max() > 1.38 and abs(per_sample.mean() - 1) < 0.03


# --- gaussian blur ------------------------------------------------------------------------------------------------


def test_blur_matches_torchvision_per_sample():
    x = torch.rand(6, 3, 20, 17, generator=_gen(12))
    sigma = torch.tensor([0.1, 0.5, 0.9, 1.3, 2.0, 3.0])
    for k in (3, 7, 13):
        out = ops.gaussian_blur(x, sigma, k)
        expected = torch.stack([TF.gaussian_blur(x[i], [k, k], [float(s), float(s)]) for i, s in enumerate(sigma)])
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_blur_with_the_unit_impulse_leaves_a_sample_exactly_alone():
    x = torch.rand(4, 3, 9, 9, generator=_gen(17))
    chosen = torch.tensor([True, False, False, True])
    kernels = ops.gaussian_kernels(torch.tensor([0.8, 1.0, 1.5, 2.0]), 7, chosen).float()
    out = ops.separable_blur(x, kernels)
    assert torch.equal(out[~chosen], x[~chosen])
    torch.testing.assert_close(out[chosen], ops.gaussian_blur(x[chosen], torch.tensor([0.8, 2.0]), 7), rtol=0, atol=0)


def test_blur_keeps_a_constant_image_and_sizes_its_kernel():
    x = torch.full((3, 3, 10, 10), 0.37)
    torch.testing.assert_close(ops.gaussian_blur(x, torch.tensor([0.5, 1.0, 2.0]), 9), x, rtol=0, atol=1e-6)
    spec = ViewSpec(blur_p=1.0)
    assert blur_kernel_size(spec, 224) == 2 * math.ceil(6.0) + 1 == 13
    assert blur_kernel_size(spec, 32) == 3  # sigma_max = 2 * 32 / 224 = 0.29
    assert blur_kernel_size(spec, 96) == 2 * math.ceil(3 * 2 * 96 / 224) + 1
    assert blur_kernel_size(ViewSpec(blur_sigma=(0.1, 20.0)), 8) == 7  # sigma_max = 20 * 8 / 224 = 0.71
    assert blur_kernel_size(ViewSpec(blur_sigma=(0.1, 200.0)), 8) == 15  # radius capped at out_size - 1


# --- probabilities, presets, config -------------------------------------------------------------------------------


def _changed_fraction(spec: ViewSpec, off: ViewSpec, n: int = 1000, size: int = 6) -> float:
    """Share of samples that ``spec`` changes compared with ``off`` (the same generator stream, the op off)."""
    images = _images(n, size, seed=13)
    (a,) = BatchAugment([spec], out_size=size)(images, _gen(14))
    (b,) = BatchAugment([off], out_size=size)(images, _gen(14))
    return float(((a - b).abs().amax(dim=(1, 2, 3)) > 1e-6).float().mean())


@pytest.mark.parametrize(
    ("field", "p"), [("flip_p", 0.5), ("jitter_p", 0.8), ("grayscale_p", 0.2), ("blur_p", 0.3), ("solarize_p", 0.2)]
)
def test_each_op_hits_about_p_of_the_samples(field, p):
    base = dataclasses.replace(PLAIN, blur_sigma=(30.0, 40.0))  # a visible blur even at 6 px
    fraction = _changed_fraction(dataclasses.replace(base, **{field: p}), base)
    assert abs(fraction - p) < 0.05
    assert _changed_fraction(dataclasses.replace(base, **{field: 1.0}), base, n=200) == 1.0


def test_byol_preset_blurs_view_1_always_and_solarizes_a_fifth_of_view_2():
    specs = view_specs(_views("byol"))
    assert [s.blur_p for s in specs] == [1.0, 0.1] and [s.solarize_p for s in specs] == [0.0, 0.2]
    # A sigma of 0.1 px does not change a float32 image: make the blur visible to count it.
    visible = dataclasses.replace(specs[0], blur_sigma=(30.0, 40.0))
    assert _changed_fraction(visible, dataclasses.replace(visible, blur_p=0.0), n=300) == 1.0
    fraction = _changed_fraction(specs[1], dataclasses.replace(specs[1], solarize_p=0.0), n=1000)
    assert 0.15 < fraction < 0.25


def test_presets_and_view_specs():
    strong = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2}
    simclr = view_specs(_views("simclr"))
    assert simclr == [ViewSpec(blur_p=0.5, **strong), ViewSpec(blur_p=0.5, **strong)]
    byol = view_specs(_views("byol"))
    assert byol == [ViewSpec(blur_p=1.0), ViewSpec(blur_p=0.1, solarize_p=0.2)]
    assert view_specs({}) == [ViewSpec(), ViewSpec()]
    custom = view_specs({"crop_scale": [0.2, 1.0], "hue": 0.0, "blur_p": [1.0, 0.0, 0.5], "solarize_p": [0, 0, 1]})
    assert len(custom) == 3 and all(s.crop_scale == (0.2, 1.0) and s.hue == 0.0 for s in custom)
    assert [s.blur_p for s in custom] == [1.0, 0.0, 0.5] and custom[2].solarize_p == 1.0
    with pytest.raises(ValueError, match="unknown key"):
        view_specs({"blur": [0.5, 0.5]})
    with pytest.raises(ValueError, match="different numbers of views"):
        view_specs({"blur_p": [0.5, 0.5], "solarize_p": [0.0]})
    with pytest.raises(ValueError, match=r"different numbers of views \(blur_p 2, brightness 3\)"):
        view_specs({"blur_p": [0.5, 0.5], "brightness": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="one probability per view"):
        view_specs({"blur_p": 0.5})


def test_every_colour_setting_may_differ_per_view():
    views = {"jitter_p": [1.0, 0.5], "brightness": [0.8, 0.2], "hue": 0.05, "grayscale_p": [0.0, 0.3]}
    config = {
        "datasets": {"d": {"source": "digits"}},
        "pretrain": {"dataset": "d"},
        "methods": {"byol": {"views": views}},
    }
    first, second = view_specs(validate_config(config)["methods"]["byol"]["views"])
    assert (first.jitter_p, first.brightness, first.grayscale_p, first.blur_p) == (1.0, 0.8, 0.0, 1.0)
    assert (second.jitter_p, second.brightness, second.grayscale_p, second.solarize_p) == (0.5, 0.2, 0.3, 0.2)
    assert first.hue == second.hue == 0.05 and first.saturation == second.saturation == 0.2
    config["methods"]["byol"]["views"] = {"hue": [0.1, 0.7]}
    with pytest.raises(ConfigError, match=r"methods\.byol\.views\.hue"):
        validate_config(config)


SOURCES = yaml.safe_load((Path(__file__).parent / "data" / "paper_sources.yaml").read_text())


@pytest.mark.parametrize("method", ["simclr", "mocov2plus", "byol", "simsiam", "barlowtwins"])
def test_each_methods_default_views_are_its_solo_learn_imagenet_pipeline(method):
    """The schema's defaults give every view the parameters of the method's pipeline in solo-learn's ImageNet
    augmentation files (tests/data/paper_sources.yaml, each pipeline with its source file)."""
    pipeline = SOURCES["pipelines"][SOURCES["methods"][method]["official"]["pipeline"]]
    specs = view_specs(_views(method))
    assert len(specs) == len(pipeline["views"])
    for spec, source in zip(specs, pipeline["views"], strict=True):
        assert source["equalize_p"] == 0.0  # genssl has no equalisation; no source uses it
        for key, value in source.items():
            if key not in ("crop_size", "equalize_p"):
                assert getattr(spec, key) == (tuple(value) if isinstance(value, list) else value), (
                    key,
                    pipeline["source"],
                )
