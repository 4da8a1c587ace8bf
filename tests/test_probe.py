"""The linear probe and kNN on digits: a trained encoder beats a random one, both solvers agree, the paper's
augmented protocol trains, and bad input is refused."""

import json

import numpy as np
import pytest
import torch

from genssl.config import validate_config
from genssl.errors import GensslError
from genssl.evaluate.feature_file import SplitFeatures, load_feature_set, save_feature_set
from genssl.evaluate.features import extract_encoder_features
from genssl.evaluate.probe import logistic_probe, run_probe
from genssl.models import build_backbone
from genssl.models.encoder_file import save_encoder
from genssl.train.trainer import pretrain

BACKBONE = {"name": "small_resnet", "width": 8, "blocks": [1, 1], "small_stem": True, "zero_init_residual": False}


def study(**probe):
    return validate_config(
        {
            "datasets": {"digits": {"source": "digits", "image_size": 16}},
            "pretrain": {"dataset": "digits", "epochs": 3, "batch_size": 128, "backbone": BACKBONE},
            "methods": {"simclr": {"proj_hidden_dim": 64, "proj_output_dim": 32, "views": {"crop_scale": [0.3, 1.0]}}},
            "probe": {"C": [0.01, 0.1, 1.0, 10.0], **probe},
        }
    )


@pytest.fixture(scope="module")
def encoders(digits16, tmp_path_factory):
    """A SimCLR encoder trained for 3 epochs and a random one, with their digits features."""
    root = tmp_path_factory.mktemp("probe")
    torch.set_num_threads(2)
    pretrain(study(), "simclr", "standard", digits16, root / "simclr")
    torch.manual_seed(1)
    backbone, dim = build_backbone(BACKBONE)
    (root / "random").mkdir()
    save_encoder(root / "random" / "encoder.safetensors", backbone, BACKBONE, dim)
    files = {}
    for name in ("simclr", "random"):
        files[name] = root / f"{name}.npz"
        extract_encoder_features(study(), "digits", root / name / "encoder.safetensors", digits16, files[name])
    return root, files


def test_the_probe_and_knn_separate_a_trained_encoder_from_a_random_one(encoders, tmp_path):
    _, files = encoders
    trained = run_probe(study(), files["simclr"], tmp_path / "trained.json")
    random = run_probe(study(), files["random"], tmp_path / "random.json")
    assert trained["top1"] > random["top1"] + 0.08
    assert trained["knn"]["20"]["top1"] > random["knn"]["20"]["top1"] + 0.08
    assert trained["top1"] > 0.75 and trained["top5"] >= trained["top1"]
    written = json.loads((tmp_path / "trained.json").read_text())
    assert written == json.loads(json.dumps(trained))
    assert written["n"] == {"train": 1293, "val": 145, "test": 359} and written["classes"] == 10
    assert written["protocol"] == "features" and written["backend"] == "sklearn"
    assert set(written["selection"]["val_top1"]) == {"0.01", "0.1", "1.0", "10.0"}
    best = written["selection"]["C"]
    assert written["selection"]["val_top1"][str(best)] == max(written["selection"]["val_top1"].values())
    assert set(written["knn"]) == {"20", "200"}


def test_the_sklearn_and_torch_backends_give_the_same_probe(encoders):
    _, files = encoders
    features = load_feature_set(files["simclr"])
    with_sklearn = logistic_probe(features, study(backend="sklearn"))
    with_torch = logistic_probe(features, study(backend="torch"))
    assert with_torch["backend"] == "torch"
    assert with_sklearn["selection"]["C"] == with_torch["selection"]["C"]
    test_size = len(features.split("test").labels)
    assert abs(with_sklearn["top1"] - with_torch["top1"]) <= 1 / test_size + 1e-12
    for c, value in with_sklearn["selection"]["val_top1"].items():
        assert abs(value - with_torch["selection"]["val_top1"][c]) <= 1 / 145 + 1e-12


def test_the_augmented_protocol_trains_a_linear_layer_on_the_frozen_backbone(encoders, digits16, tmp_path):
    root, files = encoders
    settings = {"epochs": 8, "batch_size": 128, "lr": 1.0, "crop_scale": [0.5, 1.0]}
    config = study(protocol="augmented", augmented=settings)
    encoder = root / "simclr" / "encoder.safetensors"
    result = run_probe(config, files["simclr"], tmp_path / "a.json", encoder, digits16)
    again = run_probe(config, files["simclr"], tmp_path / "b.json", encoder, digits16)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()  # seeded
    losses = result["training"]["losses"]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.5
    assert result["top1"] > 0.4 and again["protocol"] == "augmented"  # chance: 0.1
    with pytest.raises(GensslError, match="not the encoder"):
        run_probe(config, files["simclr"], tmp_path / "c.json", root / "random" / "encoder.safetensors", digits16)
    with pytest.raises(GensslError, match="--encoder"):
        run_probe(config, files["simclr"], tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()


def test_the_augmented_protocol_takes_lars_settings_and_per_dataset_epochs_and_input_size(encoders, digits16, tmp_path):
    """The paper's probe settings: LARS with its eta / clip_lr / exclusion, Places365's own epochs
    (``epochs_by_dataset``), CIFAR's own input size (``features.by_dataset``); here on digits."""
    root, _ = encoders
    settings = {"epochs": 5, "epochs_by_dataset": {"digits": 2}, "batch_size": 128, "optimizer": "lars", "lr": 1.0}
    settings |= {"eta": 0.001, "clip_lr": True, "exclude_bias_n_norm": False}
    config = study(protocol="augmented", augmented=settings)
    config["features"]["by_dataset"] = {"digits": {"input_size": 12, "crop_fraction": 1.0}}
    encoder = root / "simclr" / "encoder.safetensors"
    meta = extract_encoder_features(config, "digits", encoder, digits16, tmp_path / "f.npz")
    assert meta["preprocessing"] == {"size": 12, "crop_fraction": 1.0, "interpolation": "bilinear"}
    assert load_feature_set(tmp_path / "f.npz").meta["preprocessing"]["size"] == 12
    result = run_probe(config, tmp_path / "f.npz", tmp_path / "p.json", encoder, digits16)
    assert len(result["training"]["losses"]) == 2 and result["training"]["epochs"] == 2
    assert result["training"]["eta"] == 0.001 and result["training"]["clip_lr"] is True


def test_an_empty_validation_split_is_refused_naming_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    splits = {
        name: SplitFeatures(rng.normal(size=(n, 4)).astype(np.float32), np.arange(n) % 2, np.arange(n))
        for name, n in (("train", 20), ("val", 0), ("test", 10))
    }
    meta = {"dataset": {"name": "tiny", "manifest_sha256": "x", "classes": ["a", "b"]}, "feature_dim": 4}
    save_feature_set(tmp_path / "f.npz", splits, meta)
    with pytest.raises(GensslError, match=r"val split is empty.*'tiny'"):
        run_probe(study(), tmp_path / "f.npz", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
