"""``genssl similarity`` on synthetic feature files: the pairs and their kinds, the CSVs, the matrices, the
heatmaps, and the refusal of feature sets that do not hold the same examples."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from genssl.config import validate_config
from genssl.errors import GensslError
from genssl.evaluate.feature_file import SplitFeatures, save_feature_set
from genssl.evaluate.similarity.cka import linear_cka
from genssl.evaluate.similarity.procrustes import procrustes_distance
from genssl.evaluate.similarity.stage import pair_kind, run_similarity


def _write(path, features, indices=None):
    indices = np.arange(len(features)) if indices is None else indices
    split = SplitFeatures(features.astype(np.float32), np.zeros(len(features), np.int64), indices)
    meta = {"dataset": {"name": "digits", "manifest_sha256": "m", "classes": ["0"]}, "feature_dim": features.shape[1]}
    save_feature_set(path, {"test": split}, meta)
    return path


@pytest.fixture
def encoders(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(120, 8))
    return {
        "simclr/standard": _write(tmp_path / "a.npz", base),
        "simclr/generative": _write(tmp_path / "b.npz", base + 0.3 * rng.normal(size=(120, 8))),
        "byol/standard": _write(tmp_path / "c.npz", rng.normal(size=(120, 6))),
        "conditioning/icdiffusion": _write(tmp_path / "d.npz", base @ np.linalg.qr(rng.normal(size=(8, 8)))[0]),
    }


def config(**similarity):
    return validate_config({"similarity": {"bootstrap": 30, **similarity}})


def test_every_pair_is_listed_once_with_its_kind_value_and_interval(encoders, tmp_path):
    result = run_similarity(config(minibatch_size=40), encoders, tmp_path / "out")
    with open(tmp_path / "out" / "cka.csv") as f:
        cka = list(csv.DictReader(f))
    with open(tmp_path / "out" / "opd.csv") as f:
        opd = {(row["a"], row["b"]): row for row in csv.DictReader(f)}
    assert len(cka) == len(opd) == 6
    kinds = {(row["a"], row["b"]): row["kind"] for row in cka}
    assert kinds[("simclr/standard", "simclr/generative")] == "standard_vs_generative"
    assert kinds[("simclr/standard", "byol/standard")] == "cross"
    assert kinds[("simclr/standard", "conditioning/icdiffusion")] == "conditioning"
    features = {name: np.load(path)["test_features"] for name, path in encoders.items()}
    for row in cka:
        a, b = features[row["a"]], features[row["b"]]
        assert float(row["cka"]) == pytest.approx(linear_cka(a, b), abs=1e-6)
        assert float(row["cka_debiased"]) == pytest.approx(linear_cka(a, b, debiased=True), abs=1e-6)
        assert float(row["cka_low"]) <= float(row["cka_high"]) and row["n"] == "120"
        assert 0 <= float(row["cka_minibatch"]) <= 1
        assert float(opd[(row["a"], row["b"])]["opd"]) == pytest.approx(procrustes_distance(a, b), abs=1e-6)
    rotated = opd[("simclr/standard", "conditioning/icdiffusion")]
    assert float(rotated["opd"]) == pytest.approx(0, abs=1e-5)  # an orthogonal transform of the same features
    written = json.loads((tmp_path / "out" / "matrices.json").read_text())
    assert written["encoders"] == list(encoders) and written == json.loads(json.dumps(result))
    assert np.array(written["matrices"]["cka"]["value"]).shape == (4, 4)
    for name in ("cka", "cka_debiased", "opd"):
        assert Image.open(tmp_path / "out" / f"{name}.png").size[0] > 300


def test_the_analysis_is_reproducible(encoders, tmp_path):
    run_similarity(config(), encoders, tmp_path / "one")
    run_similarity(config(), encoders, tmp_path / "two")
    for name in ("cka.csv", "opd.csv", "matrices.json", "cka.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_feature_sets_of_other_examples_are_refused_and_nothing_is_written(encoders, tmp_path):
    shuffled = dict(encoders)
    features = np.load(encoders["byol/standard"])["test_features"]
    shuffled["byol/standard"] = _write(tmp_path / "e.npz", features, np.arange(120)[::-1].copy())
    with pytest.raises(GensslError, match="ordered differently"):
        run_similarity(config(), shuffled, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_replicate_seeds_get_values_but_no_bootstrap_interval(encoders, tmp_path):
    """The bootstrap over test examples covers the first seed's pairs; a replicate's pairs are for intervals over
    seeds, which the report computes."""
    rng = np.random.default_rng(1)
    base = np.load(encoders["simclr/standard"])["test_features"]
    encoders["simclr/standard-seed1"] = _write(tmp_path / "r.npz", base + 0.5 * rng.normal(size=base.shape))
    result = run_similarity(config(), encoders, tmp_path / "out")
    with open(tmp_path / "out" / "cka.csv") as f:
        cka = {(row["a"], row["b"]): row for row in csv.DictReader(f)}
    assert len(cka) == 10
    replicate = cka[("simclr/standard", "simclr/standard-seed1")]
    assert replicate["kind"] == "seed_to_seed" and 0 < float(replicate["cka"]) < 1
    assert replicate["cka_low"] == replicate["cka_high"] == ""
    first = cka[("simclr/standard", "simclr/generative")]
    assert float(first["cka_low"]) <= float(first["cka"]) <= float(first["cka_high"])
    index = result["encoders"].index("simclr/standard-seed1")
    assert result["matrices"]["opd"]["low"][0][index] is None and result["matrices"]["opd"]["low"][0][1] is not None
    # the first seed's intervals do not depend on which replicates are compared too
    without = run_similarity(config(), {k: v for k, v in encoders.items() if "seed1" not in k}, tmp_path / "first")
    assert without["matrices"]["cka"]["low"][0][1] == result["matrices"]["cka"]["low"][0][1]


def test_pair_kinds():
    assert pair_kind("diet/generative", "diet/standard") == "standard_vs_generative"
    assert pair_kind("diet/generative-seed2", "diet/standard-seed2") == "standard_vs_generative"
    assert pair_kind("diet/generative-seed2", "diet/standard") == "cross"
    assert pair_kind("diet/standard-seed1", "diet/standard") == "seed_to_seed"
    assert pair_kind("diet/generative", "diet/p025") == "cross"
    assert pair_kind("conditioning/sd_unclip", "diet/standard") == "conditioning"
