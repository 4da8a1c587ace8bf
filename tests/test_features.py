"""Feature extraction: deterministic preprocessing and files, aligned examples, refusal of mismatching input."""

import numpy as np
import pytest
import torch

from genssl.config import validate_config
from genssl.errors import GensslError
from genssl.evaluate.feature_file import SplitFeatures, aligned, load_feature_set, save_feature_set
from genssl.evaluate.features import extract_encoder_features
from genssl.evaluate.preprocess import preprocess_batch, resized_side
from genssl.models import build_backbone
from genssl.models.encoder_file import encode, save_encoder
from genssl.store import ImageStore

BACKBONE = {"name": "small_resnet", "width": 4, "blocks": [1, 1], "small_stem": True, "zero_init_residual": False}


def study(**features):
    return validate_config(
        {
            "datasets": {"digits": {"source": "digits", "image_size": 16}},
            "pretrain": {"dataset": "digits", "backbone": BACKBONE},
            "features": {"batch_size": 100, **features},
        }
    )


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder") / "encoder.safetensors"
    torch.manual_seed(0)
    backbone, dim = build_backbone(BACKBONE)
    save_encoder(path, backbone, BACKBONE, dim)
    return path


def test_preprocessing_resizes_the_shorter_side_and_takes_the_centre():
    assert resized_side(40, 60, 32, 1.0) == (32, 48)
    assert resized_side(60, 40, 224, 0.875) == (384, 256)
    image = np.zeros((1, 40, 60, 3), np.uint8)
    image[:, :, 24:36] = 255  # a vertical bar in the middle stays in the middle
    out = preprocess_batch(image, 32, 1.0, "bilinear")
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8
    columns = out[0, 16, :, 0]
    assert columns[16] == 255 and columns[0] == 0 and columns[31] == 0
    mixed = preprocess_batch([image[0], image[0, :30, :50]], 16, 0.875, "bicubic")
    assert mixed.shape == (2, 16, 16, 3)


def test_images_of_the_target_size_pass_unchanged():
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert (preprocess_batch(images, 16, 1.0, "bilinear") == images).all()


def test_features_are_the_encoder_outputs_of_every_split_and_the_file_is_deterministic(
    digits16, encoder_file, tmp_path
):
    meta = extract_encoder_features(study(), "digits", encoder_file, digits16, tmp_path / "a.npz")
    extract_encoder_features(study(), "digits", encoder_file, digits16, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    extract_encoder_features(study(batch_size=7), "digits", encoder_file, digits16, tmp_path / "c.npz")
    features = load_feature_set(tmp_path / "a.npz")
    other_batches = load_feature_set(tmp_path / "c.npz")
    np.testing.assert_allclose(features.split("train").features, other_batches.split("train").features, atol=1e-5)
    store = ImageStore(digits16)
    assert set(features.splits) == {"train", "val", "test"} and meta["feature_dim"] == 8
    for name, split in features.splits.items():
        assert (split.indices == store.split(name)).all() and (split.labels == store.labels[split.indices]).all()
    from genssl.models.encoder_file import load_encoder

    backbone, _, _ = load_encoder(encoder_file)
    test = features.split("test")
    images = torch.from_numpy(store.get_batch(test.indices[:10])).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_allclose(test.features[:10], encode(backbone, images).numpy(), rtol=1e-5, atol=1e-6)
    assert features.meta["encoder"]["kind"] == "pretrained" and features.meta["dataset"]["name"] == "digits"


def test_an_encoder_of_another_backbone_is_refused_naming_the_keys(digits16, encoder_file, tmp_path):
    config = study()
    config["pretrain"]["backbone"]["width"] = 8
    with pytest.raises(GensslError, match=r"pretrain.backbone.width: encoder 4, config 8"):
        extract_encoder_features(config, "digits", encoder_file, digits16, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_a_missing_store_or_encoder_is_named(digits16, encoder_file, tmp_path):
    with pytest.raises(GensslError, match="no prepared dataset store"):
        extract_encoder_features(study(), "digits", encoder_file, tmp_path / "nothing", tmp_path / "x.npz")
    with pytest.raises(GensslError, match="no encoder file"):
        extract_encoder_features(study(), "digits", tmp_path / "none.safetensors", digits16, tmp_path / "x.npz")


def _feature_file(path, indices, manifest="m0"):
    rng = np.random.default_rng(0)
    split = SplitFeatures(rng.normal(size=(len(indices), 3)).astype(np.float32), np.zeros(len(indices)), indices)
    meta = {"dataset": {"name": "d", "manifest_sha256": manifest, "classes": ["0"]}, "feature_dim": 3}
    save_feature_set(path, {"test": split}, meta)
    return load_feature_set(path)


def test_features_of_other_examples_orders_or_stores_are_not_aligned(tmp_path):
    first = _feature_file(tmp_path / "a.npz", np.arange(10))
    assert len(aligned([first, _feature_file(tmp_path / "same.npz", np.arange(10))], "test")) == 2
    with pytest.raises(GensslError, match="9 test examples"):
        aligned([first, _feature_file(tmp_path / "b.npz", np.arange(9))], "test")
    with pytest.raises(GensslError, match="example 3 is dataset image 4"):
        aligned([first, _feature_file(tmp_path / "c.npz", np.array([0, 1, 2, 4, 3, 5, 6, 7, 8, 9]))], "test")
    with pytest.raises(GensslError, match="different stores"):
        aligned([first, _feature_file(tmp_path / "d.npz", np.arange(10), manifest="m1")], "test")
    with pytest.raises(GensslError, match="no 'val' split"):
        aligned([first, first], "val")
