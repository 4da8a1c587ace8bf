"""``genssl evaluate`` (rule evaluate_encoder): one process writes what ``genssl features`` and then ``genssl probe``
write, byte for byte, each command given the config slice its rule passes; an error leaves none of its files."""

from pathlib import Path

import pytest

from genssl.cli import main
from genssl.config import to_json, validate_config
from genssl.data.prepare import prepare_dataset
from genssl.stages import config_slice, evaluation_job_keys, features_keys, probe_keys

#: shapes is probed; digits, the similarity analysis' dataset, is encoded but not probed.
ENCODED, PROBED = ["shapes", "digits"], ["shapes"]


def study(protocol):
    return validate_config(
        {
            "seed": 0,
            "datasets": {
                "digits": {"source": "digits", "image_size": 16},
                "shapes": {"source": "shapes", "image_size": 16, "n_per_class": 10},
            },
            "pretrain": {"dataset": "digits", "backbone": {"width": 4, "blocks": [1]}},
            "downstream": PROBED,
            "probe": {"protocol": protocol, "C": [0.1, 1.0], "knn_k": [5], "augmented": {"epochs": 1}},
        }
    )


def sliced(config, keys):
    return to_json(config_slice(config, keys))


@pytest.fixture(scope="module")
def inputs(digits16, tmp_path_factory):
    """The stores of both datasets and a method's initialisation as the encoder."""
    root = tmp_path_factory.mktemp("evaluate")
    config = study("features")
    prepare_dataset(config, "shapes", root / "shapes")
    encoder = root / "init"
    assert main(["init-encoder", "--config-json", to_json(config), "--method", "simclr", "--out", str(encoder)]) == 0
    return {"digits": str(digits16), "shapes": str(root / "shapes")}, str(encoder / "encoder.safetensors")


def outputs(root):
    """The feature files of the encoded datasets and the results of the probed ones (the rules' layout)."""
    features = {d: str(root / "features" / f"{d}.npz") for d in ENCODED}
    results = {d: str(root / "probe" / f"{d}.json") for d in PROBED}
    return features, results


def evaluate_args(config, inputs, features, results):
    stores, encoder = inputs
    return [
        *("evaluate", "--config-json", sliced(config, evaluation_job_keys(config)), "--method", "simclr"),
        *("--run", "init", "--encoder", encoder, "--downstream", *ENCODED, "--data", *(stores[d] for d in ENCODED)),
        *("--features", *features.values(), "--probe", *PROBED, "--out", *results.values()),
    ]


@pytest.mark.parametrize("protocol", ["features", "augmented"])
def test_one_process_writes_what_the_features_and_probe_commands_write(inputs, tmp_path, protocol):
    config = study(protocol)
    stores, encoder = inputs
    features, results = outputs(tmp_path)
    run = ["--method", "simclr", "--run", "init", "--encoder", encoder]
    for d in ENCODED:  # as the rules extract_features and linear_probe call them
        common = ["--config-json", sliced(config, features_keys(config, d)), *run, "--downstream", d]
        assert main(["features", *common, "--data", stores[d], "--out", features[d]]) == 0
    for d in PROBED:
        images = ["--encoder", encoder, "--data", stores[d]] if protocol == "augmented" else []
        common = ["--config-json", sliced(config, probe_keys(config, d)), "--features", features[d]]
        assert main(["probe", *common, *images, "--out", results[d]]) == 0
    files = [*features.values(), *results.values()]
    separate = {path: Path(path).read_bytes() for path in files}
    for path in files:
        Path(path).unlink()

    assert main(evaluate_args(config, inputs, features, results)) == 0
    assert {path: Path(path).read_bytes() for path in files} == separate
    assert b'"protocol": "%s"' % protocol.encode() in separate[results["shapes"]]


def test_an_error_leaves_none_of_the_files(inputs, tmp_path, capsys):
    config = study("features")
    features, results = outputs(tmp_path)
    stores, encoder = inputs
    missing = str(tmp_path / "no-digits")
    args = evaluate_args(config, ({**stores, "digits": missing}, encoder), features, results)
    assert main(args) == 1  # shapes is encoded first, then digits' store is missing
    assert f"{missing}: no prepared dataset store" in capsys.readouterr().err
    assert not [*tmp_path.rglob("*.npz"), *tmp_path.rglob("*.json")]  # shapes.npz was written, then removed

    probe_mnist = [*args[: args.index("--probe") + 1], "mnist", "--out", results["shapes"]]
    assert main(probe_mnist) == 2
    assert "cannot probe mnist without encoding it" in capsys.readouterr().err
    assert main([*args[: args.index("--out") + 1], results["shapes"], "x.json"]) == 2
    assert "--out: give one result file per item (1), got 2" in capsys.readouterr().err
    assert not [*tmp_path.rglob("*.npz"), *tmp_path.rglob("*.json")]
