import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from genssl.config import validate_config
from genssl.data.prepare import prepare_dataset
from genssl.errors import CorruptImageError, DatasetNotFoundError
from genssl.store import ImageStore, verify_store
from tests.helpers import write_png


def _config(**datasets):
    return validate_config({"seed": 0, "datasets": datasets})


def test_digits_store_holds_the_scikit_learn_digits(tmp_path):
    config = _config(digits={"source": "digits", "image_size": 8})
    manifest = prepare_dataset(config, "digits", tmp_path / "digits")
    bunch = load_digits()
    store = ImageStore(tmp_path / "digits")
    assert manifest["n"] == len(store) == 1797
    assert store.shape == (8, 8, 3) and store.encoding == "raw"
    assert store.classes == [str(d) for d in range(10)]
    assert np.array_equal(store.labels, bunch.target)
    # At the native 8 px the resize is the identity: pixels are round(v * 255 / 16) in all three channels.
    expected = np.rint(bunch.images * 255 / 16).astype(np.uint8)
    for i in (0, 1, 500, 1796):
        assert np.array_equal(store[i], np.repeat(expected[i][..., None], 3, axis=2))
    assert manifest["provenance"]["split_policy"] == {"train": "seeded", "val": "seeded", "test": "seeded"}
    sizes = {k: v["n"] for k, v in manifest["splits"].items()}
    assert sizes["train"] + sizes["val"] + sizes["test"] == 1797 and 340 < sizes["test"] < 380


def test_digits_are_upscaled_to_the_configured_size(tmp_path):
    prepare_dataset(_config(digits={"source": "digits", "image_size": 32}), "digits", tmp_path / "d")
    store = ImageStore(tmp_path / "d")
    image = store[0].astype(int)
    assert store.shape == (32, 32, 3)
    assert np.array_equal(image[..., 0], image[..., 1])
    small = np.rint(load_digits().images[0] * 255 / 16)
    # Each 4 x 4 block of the bicubic upscale follows the source pixel it came from.
    blocks = image[..., 0].reshape(8, 4, 8, 4).mean((1, 3))
    assert np.corrcoef(blocks.ravel(), small.ravel())[0, 1] > 0.95


def test_preparing_twice_gives_identical_manifests_and_hashes(tmp_path):
    config = _config(shapes={"source": "shapes", "image_size": 16, "n_per_class": 5})
    prepare_dataset(config, "shapes", tmp_path / "a")
    prepare_dataset(config, "shapes", tmp_path / "b", workers=2)
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    for name in json.loads((tmp_path / "a" / "manifest.json").read_text())["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_shapes_are_labelled_round_robin_and_seeded(tmp_path):
    prepare_dataset(_config(s={"source": "shapes", "image_size": 16, "n_per_class": 4}), "s", tmp_path / "a")
    other = validate_config({"seed": 1, "datasets": {"s": {"source": "shapes", "image_size": 16, "n_per_class": 4}}})
    prepare_dataset(other, "s", tmp_path / "b")
    a, b = ImageStore(tmp_path / "a"), ImageStore(tmp_path / "b")
    assert len(a) == 40 and a.classes[:3] == ["circle", "ring", "triangle"]
    assert np.array_equal(a.labels, np.arange(40) % 10)
    assert not np.array_equal(a[0], b[0])  # another global seed draws other images


def test_output_is_replaced_only_when_preparation_succeeds(tmp_path):
    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for k in range(3):
        write_png(root / "cat" / f"{k}.png", rng)
        write_png(root / "dog" / f"{k}.png", rng)
    config = _config(pets={"source": "imagefolder", "root": str(root), "image_size": 8})
    out = tmp_path / "results" / "pets"
    prepare_dataset(config, "pets", out)
    before = (out / "manifest.json").read_bytes()
    (root / "dog" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(CorruptImageError, match=r"cannot read image .*dog/2\.png"):
        prepare_dataset(config, "pets", out)
    # The finished store from before is untouched and no temporary directory is left behind.
    assert (out / "manifest.json").read_bytes() == before and verify_store(out) == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["pets"]


def test_imagefolder_flat_layout_with_a_corrupt_file(tmp_path):
    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    pixels = {}
    for cls in ("ant", "bee", "cow"):
        for k in range(4):
            pixels[(cls, k)] = write_png(root / cls / f"img{k}.png", rng, size=(8, 8))
    (root / "bee" / "img1.png").write_bytes(b"garbage")
    (root / "cow" / "notes.txt").write_text("not an image")

    config = _config(tree={"source": "imagefolder", "root": str(root), "image_size": 8})
    with pytest.raises(CorruptImageError) as info:
        prepare_dataset(config, "tree", tmp_path / "out")
    message = str(info.value)
    assert str(root / "bee" / "img1.png") in message and "datasets.tree.skip_corrupt" in message
    assert not (tmp_path / "out").exists()

    config["datasets"]["tree"]["skip_corrupt"] = True
    manifest = prepare_dataset(config, "tree", tmp_path / "out")
    store = ImageStore(tmp_path / "out")
    assert len(store) == 11 and store.classes == ["ant", "bee", "cow"]
    assert [s["item"] for s in manifest["skipped"]] == [str(root / "bee" / "img1.png")]
    assert "UnidentifiedImageError" in manifest["skipped"][0]["error"]
    assert np.array_equal(store.labels, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    assert np.array_equal(store[0], pixels[("ant", 0)])  # 8 x 8 sources at 8 px: stored unchanged
    assert np.array_equal(store[4], pixels[("bee", 0)]) and np.array_equal(store[5], pixels[("bee", 2)])


def test_imagefolder_split_layout_uses_the_official_splits(tmp_path):
    root = tmp_path / "imagenet"
    rng = np.random.default_rng(0)
    for cls in ("n01", "n02"):
        for k in range(10):
            write_png(root / "train" / cls / f"{k}.JPEG.png", rng, size=(30, 20))
        for k in range(3):
            write_png(root / "val" / cls / f"v{k}.png", rng, size=(30, 20))
    config = _config(inet={"source": "imagefolder", "root": str(root), "image_size": 16, "encoding": "png"})
    manifest = prepare_dataset(config, "inet", tmp_path / "out")
    store = ImageStore(tmp_path / "out")
    assert manifest["provenance"]["split_policy"] == {"train": "official", "val": "seeded", "test": "official"}
    assert np.array_equal(store.split("test"), np.arange(20, 26))  # the official val folder is the test split
    assert store.split("val").size == 2 and np.isin(store.split("val"), np.arange(20)).all()
    assert store[0].shape == (16, 16, 3) and store.encoding == "png"


def test_imagefolder_shorter_side_keeps_the_aspect_ratio_in_an_encoded_store(tmp_path):
    root = tmp_path / "tree"
    write_png(root / "a" / "wide.png", np.random.default_rng(0), size=(40, 20))
    write_png(root / "a" / "tall.png", np.random.default_rng(1), size=(20, 60))
    config = _config(t={"source": "imagefolder", "root": str(root), "image_size": 10, "resize": "shorter_side"})
    manifest = prepare_dataset(config, "t", tmp_path / "out")
    store = ImageStore(tmp_path / "out")
    assert manifest["encoding"] == "jpeg" and manifest["shape"] is None
    assert store[0].shape == (30, 10, 3) and store[1].shape == (10, 20, 3)  # files sorted: tall, wide


def test_missing_roots_name_the_dataset_the_path_and_how_to_get_the_data(tmp_path):
    missing = tmp_path / "nowhere"
    config = _config(
        inet={"source": "imagefolder", "root": str(missing)},
        cifar={"source": "cifar10", "root": str(missing)},
    )
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_dataset(config, "inet", tmp_path / "a")
    assert "dataset 'inet'" in str(info.value) and str(missing) in str(info.value)
    assert "ROOT/train/<class>" in str(info.value)
    with pytest.raises(DatasetNotFoundError) as info:
        prepare_dataset(config, "cifar", tmp_path / "b")
    message = str(info.value)
    assert "dataset 'cifar' (source cifar10)" in message and str(missing) in message
    assert "cifar-10-python.tar.gz" in message and "datasets.cifar.download: true" in message
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_empty_root_of_a_torchvision_dataset_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    config = _config(cifar={"source": "cifar100", "root": str(tmp_path / "empty")})
    with pytest.raises(DatasetNotFoundError, match=r"dataset 'cifar' \(source cifar100, train split\): data not found"):
        prepare_dataset(config, "cifar", tmp_path / "out")


def _fake_food101(root, rng):
    """The Food-101 layout torchvision reads: food-101/meta/{train,test}.json and food-101/images/<class>/<id>.jpg."""
    base = root / "food-101"
    meta = {"train": {}, "test": {}}
    for cls in ("apple_pie", "ramen"):
        for split, ids in (("train", range(6)), ("test", range(6, 8))):
            meta[split][cls] = [f"{cls}/{i}" for i in ids]
            for i in ids:
                (base / "images" / cls).mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, size=(24, 36, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(base / "images" / cls / f"{i}.jpg")
    (base / "meta").mkdir(parents=True)
    for split in meta:
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta[split]))


def test_food101_is_read_through_torchvision_with_its_official_split(tmp_path):
    _fake_food101(tmp_path / "food", np.random.default_rng(0))
    config = _config(food={"source": "food101", "root": str(tmp_path / "food"), "image_size": 16})
    manifest = prepare_dataset(config, "food", tmp_path / "out", workers=2)
    store = ImageStore(tmp_path / "out")
    assert len(store) == 16 and store.classes == ["apple_pie", "ramen"]
    assert np.array_equal(store.labels, [0] * 6 + [1] * 6 + [0] * 2 + [1] * 2)
    assert np.array_equal(store.split("test"), np.arange(12, 16))
    assert manifest["provenance"]["split_policy"]["test"] == "official"
    assert store[0].shape == (16, 16, 3)


def test_corrupt_file_in_a_torchvision_dataset_is_named(tmp_path):
    _fake_food101(tmp_path / "food", np.random.default_rng(0))
    bad = tmp_path / "food" / "food-101" / "images" / "ramen" / "3.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    config = _config(food={"source": "food101", "root": str(tmp_path / "food"), "image_size": 16})
    with pytest.raises(CorruptImageError, match=str(bad)):
        prepare_dataset(config, "food", tmp_path / "out")
