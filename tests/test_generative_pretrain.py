"""Generative augmentation in pretraining: which views use variants (p, views, per-image draws), the modes,
p = 0 against the standard pipeline, and refusing a variant store made for other data or settings.

The variant stores here are real stores in the real format (written by the generation's shard writer and gather),
filled with images that name their (image, variant), so a test can tell exactly which variant a view used."""

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genssl.augment.pipeline import ViewSpec
from genssl.config import validate_config
from genssl.data.prepare import prepare_dataset
from genssl.errors import ConfigError, StoreError
from genssl.generate.variant_store import VariantStore, fingerprint, gather, shard_dir, write_shard
from genssl.store import ImageStore
from genssl.train.data import BatchKey, training_loader
from genssl.train.generative import GenerativeBatches, VariantChoice, mode_views
from genssl.train.trainer import pretrain
from tests.helpers import tiny_pretrain_config

K = 3


def _config(p=0.5, views="both", mode="generative+standard", seed=0):
    base = tiny_pretrain_config(epochs=1)
    base["seed"] = seed
    base["generators"] = {"toy": {"backend": "icdiffusion", "variants": K, "shards": 2}}
    base["methods"] = {"simclr": base["methods"]["simclr"], "sdiet": base["methods"]["sdiet"]}
    base["augmentations"] = {
        "standard": {},
        "gen": {"generator": "toy", "p": p, "views": views, "mode": mode},
    }
    return validate_config(base)


def _variant(index: int, v: int, shape) -> np.ndarray:
    """A variant that names itself: every pixel (index * K + v) mod 251, never a real digit image."""
    return np.full(shape, (index * K + v) % 251, dtype=np.uint8)


def write_variant_store(data_dir, out, config, name="toy"):
    store = ImageStore(data_dir)
    sources = store.split("train")
    gen = config["generators"][name]
    print_ = fingerprint(data_dir, name, gen, config["seed"], None)
    halves = np.array_split(sources, 2)
    dirs = []
    for s, part in enumerate(halves):
        variants = np.stack([np.stack([_variant(i, v, store.shape) for v in range(K)]) for i in part])
        info = {"shard": s, "k": K, "fingerprint": print_}
        dirs.append(shard_dir(f"{out}.shards", s))
        write_shard(dirs[-1], info, [(part, store.labels[part], variants)], store.shape, "raw")
    gather(dirs, out, store.classes, {"k": K, "generator": name, "fingerprint": print_}, {})
    return VariantStore(out)


@pytest.fixture(scope="module")
def variants(digits16, tmp_path_factory):
    return write_variant_store(digits16, tmp_path_factory.mktemp("augment") / "toy", _config())


def _batch(digits16, variants, p, views, n_views=2, epoch=0):
    store = ImageStore(digits16)
    train = store.split("train")
    dataset = GenerativeBatches(store, train, variants, VariantChoice(K, p, views, n_views, seed=0))
    positions = list(range(40))
    sources, _ = dataset[BatchKey(epoch, 0, positions)]
    return sources.numpy(), store.get_batch(train[positions]), train[positions]


def test_the_variant_store_reads_each_image_variant(variants, digits16):
    store = ImageStore(digits16)
    train = store.split("train")
    assert variants.k == K and (variants.sources == train).all()
    got = variants.get(train[[0, 5, -1]], np.array([2, 0, 1]))
    for image, (i, v) in zip(got, [(train[0], 2), (train[5], 0), (train[-1], 1)], strict=True):
        assert (image == _variant(int(i), v, store.shape)).all()
    with pytest.raises(StoreError, match="has no variants"):
        variants.get(store.split("test")[:1], np.array([0]))


def test_p_one_replaces_every_view_by_a_variant_of_its_own_image(digits16, variants):
    sources, _, indices = _batch(digits16, variants, p=1.0, views="both")
    assert sources.shape[0] == 2
    for view in sources:
        for image, index in zip(view, indices, strict=True):
            value = int(image[0, 0, 0])
            assert (image == value).all() and value in {(int(index) * K + v) % 251 for v in range(K)}
    assert not (sources[0] == sources[1]).all()  # the two views draw their variants independently


def test_views_second_keeps_the_first_view_real(digits16, variants):
    sources, real, _ = _batch(digits16, variants, p=1.0, views="second")
    assert (sources[0] == real).all()
    assert not (sources[1] == real).all(axis=(1, 2, 3)).any()
    assert (sources[1] == sources[1][:, :1, :1, :1]).all()  # every second view is a (constant) variant


def test_p_half_replaces_about_half_and_p_zero_none(digits16, variants):
    sources, real, _ = _batch(digits16, variants, p=0.5, views="both")
    replaced = (sources != real[None]).any(axis=(2, 3, 4))
    assert 0.3 < replaced.mean() < 0.7
    sources, real, _ = _batch(digits16, variants, p=0.0, views="both")
    assert (sources == real[None]).all()


def test_draws_depend_on_image_and_epoch_only_and_nest_across_p():
    indices = np.arange(100, 160)
    low, high = VariantChoice(K, 0.25, "both", 2, seed=3), VariantChoice(K, 0.5, "both", 2, seed=3)
    use_low, variant_low = low(indices, epoch=4)
    use_sub, variant_sub = low(indices[[7, 3, 50]], epoch=4)  # another batch composition and order
    assert (use_sub == use_low[:, [7, 3, 50]]).all() and (variant_sub == variant_low[:, [7, 3, 50]]).all()
    use_high, variant_high = high(indices, epoch=4)
    assert (use_high | ~use_low).all() and (variant_high == variant_low).all()  # replaced at 0.25 => at 0.5
    assert not (low(indices, epoch=5)[0] == use_low).all()


def test_views_second_is_refused_for_a_method_with_one_view():
    with pytest.raises(ConfigError, match="views: 'second' keeps the first view real"):
        VariantChoice(K, 0.5, "second", 1, seed=0)


def test_per_run_gives_an_image_the_same_coin_and_variant_in_every_epoch():
    indices = np.arange(200, 400)
    per_run = VariantChoice(K, 0.5, "second", 2, seed=3, assignment="per_run")
    first_use, first_variant = per_run(indices, epoch=0)
    assert not first_use[0].any() and 0.35 < first_use[1].mean() < 0.65
    for epoch in (1, 7, 99):
        use, variant = per_run(indices, epoch=epoch)
        assert (use == first_use).all() and (variant == first_variant).all()
    shuffled = np.random.default_rng(0).permutation(len(indices))  # another batch composition and order
    use, variant = per_run(indices[shuffled], epoch=3)
    assert (use == first_use[:, shuffled]).all() and (variant == first_variant[:, shuffled]).all()
    other_seed = VariantChoice(K, 0.5, "second", 2, seed=4, assignment="per_run")(indices, epoch=0)
    assert not (other_seed[1] == first_variant).all()


def test_per_step_redraws_an_images_coin_and_variant_every_epoch():
    indices = np.arange(200, 400)
    per_step = VariantChoice(K, 1.0, "second", 2, seed=3, assignment="per_step")
    variants = np.stack([per_step(indices, epoch=e)[1][1] for e in range(3)])
    changed = 1 - 1 / K  # the share of images whose variant changes between two epochs
    assert (
        abs((variants[0] != variants[1]).mean() - changed) < 0.1
        and abs((variants[1] != variants[2]).mean() - changed) < 0.1
    )
    assert (VariantChoice(K, 1.0, "second", 2, seed=3)(indices, epoch=1)[1] == per_step(indices, epoch=1)[1]).all()
    coins = VariantChoice(K, 0.5, "both", 2, seed=3, assignment="per_step")
    assert not (coins(indices, epoch=0)[0] == coins(indices, epoch=1)[0]).all()


def test_modes_strip_the_standard_augmentations():
    view = ViewSpec(blur_p=1.0, solarize_p=0.2)
    assert mode_views([view], "generative+standard") == [view]
    (crop,) = mode_views([view], "generative+crop")
    assert (crop.jitter_p, crop.grayscale_p, crop.blur_p, crop.solarize_p) == (0, 0, 0, 0)
    assert crop.crop_scale == view.crop_scale and crop.flip_p == view.flip_p
    (only,) = mode_views([view], "generative-only")
    assert only == dataclasses.replace(crop, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0)


def test_the_loader_passes_the_epoch_so_views_change_between_epochs(digits16, variants):
    store = ImageStore(digits16)
    train = store.split("train")
    dataset = GenerativeBatches(store, train, variants, VariantChoice(K, 0.5, "both", 2, seed=0))
    loader, sampler = training_loader(dataset, 32, seed=1, rank=0, world_size=1, num_workers=0, pin_memory=False)
    sampler.set_epoch(0)
    first = next(iter(loader))
    again = next(iter(loader))
    sampler.set_epoch(1)
    other = next(iter(loader))
    assert first[0].shape == (2, 32, *store.shape) and (first[0] == again[0]).all()
    assert not torch.equal(first[1], other[1])


def test_p_zero_trains_exactly_the_standard_pipeline(digits16, tmp_path):
    config = _config(p=0.0)
    pretrain(config, "simclr", "standard", digits16, tmp_path / "standard")
    pretrain(config, "simclr", "gen", digits16, tmp_path / "gen", variants_dir=tmp_path / "absent")
    assert (tmp_path / "standard" / "encoder.safetensors").read_bytes() == (
        tmp_path / "gen" / "encoder.safetensors"
    ).read_bytes()


def test_generative_pretraining_uses_the_variants(digits16, variants, tmp_path):
    config = _config(p=0.5)
    pretrain(config, "simclr", "standard", digits16, tmp_path / "standard")
    run = pretrain(config, "sdiet", "gen", digits16, tmp_path / "sdiet", variants_dir=variants.path)
    pretrain(config, "simclr", "gen", digits16, tmp_path / "gen", variants_dir=variants.path)
    standard = load_file(tmp_path / "standard" / "encoder.safetensors")
    generative = load_file(tmp_path / "gen" / "encoder.safetensors")
    assert any(not torch.equal(standard[k], generative[k]) for k in standard)
    assert np.isfinite(run["final"]["loss"]) and run["config"]["generators"]["toy"]["variants"] == K


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 1}, "another seed"),
        (
            {"generators": {"toy": {"backend": "icdiffusion", "variants": K, "shards": 2, "neighbours": 2}}},
            "neighbours",
        ),
    ],
)
def test_a_variant_store_made_for_other_settings_is_refused(digits16, variants, tmp_path, change, named):
    config = _config()
    config.update(change)
    config = validate_config(config)
    with pytest.raises(StoreError, match=named):
        pretrain(config, "simclr", "gen", digits16, tmp_path / "run", variants_dir=variants.path)
    assert not (tmp_path / "run" / "encoder.safetensors").exists()


def test_a_variant_store_of_other_data_is_refused(variants, tmp_path):
    config = _config()
    config["datasets"]["digits"]["image_size"] = 20
    other = tmp_path / "digits20"
    prepare_dataset(config, "digits", other)
    with pytest.raises(StoreError, match="another data manifest sha256"):
        pretrain(config, "simclr", "gen", other, tmp_path / "run", variants_dir=variants.path)
