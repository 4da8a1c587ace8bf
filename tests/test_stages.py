"""The stage contract: every stage's paths, inputs and config slice, and that nothing else builds a results/ path."""

import ast
import json
import re

from genssl import stages
from genssl.config import to_json
from genssl.stages import (
    conditioning_encoder_file,
    conditioning_encoders,
    config_slice,
    evaluation_job_keys,
    features_keys,
    generator_keys,
    pretrain_keys,
    probe_files,
    probe_keys,
    similarity_encoders,
)
from genssl.study import Run
from tests.helpers import REPO, small_study


def test_paths_of_a_first_seed_run_and_of_a_replicate():
    config = small_study(seeds=[3, 7])
    first, replicate = Run("simclr", "standard", 3, True), Run("simclr", "standard", 7, False)
    assert stages.pretrain_dir(config, first) == "results/pretrain/digits/simclr/standard"
    assert stages.encoder_file(config, replicate) == "results/pretrain/digits/simclr/standard-seed7/encoder.safetensors"
    assert (
        stages.features_file(config, replicate, "shapes") == "results/features/digits/simclr/standard-seed7/shapes.npz"
    )
    assert "results/probe/digits/simclr/standard-seed7/shapes.json" in probe_files(config)
    # every run and every method's initialisation, for both seeds, on both downstream datasets
    assert len(probe_files(config)) == 2 * (8 + 2) * 2
    init = Run("simclr", "init", 7, False)
    assert stages.encoder_file(config, init) == "results/init/digits/simclr/init-seed7/encoder.safetensors"
    assert stages.features_file(config, init, "shapes") == "results/features/digits/simclr/init-seed7/shapes.npz"
    assert "results/probe/digits/byol/init/digits.json" in probe_files(config)
    assert stages.augment_dir(config, "ic") == "results/augment/digits/ic"
    assert stages.generator_dir(config, "ic") == "results/generators/digits/ic"


def test_a_runs_slice_holds_what_it_reads_and_not_which_methods_train_an_augmentation():
    config = small_study()
    assert pretrain_keys(config, "simclr", "standard") == [
        "seed",
        "datasets.digits",
        "pretrain",
        "methods.simclr",
        "augmentations.standard.generator",
    ]
    part = config_slice(config, pretrain_keys(config, "simclr", "p025"))
    assert part["augmentations"]["p025"] == {
        "generator": "ic",
        "p": 0.25,
        "views": "both",
        "assignment": "per_step",
        "mode": "generative+standard",
    }
    # the generator and its conditioning run (simclr/standard, whose encoder it is conditioned on)
    assert part["generators"] == {"ic": config["generators"]["ic"]}
    assert set(part["augmentations"]) == {"p025", "standard"} and set(part["methods"]) == {"simclr"}
    assert set(part) == {"seed", "datasets", "pretrain", "methods", "augmentations", "generators"}


def test_a_generator_conditioned_on_a_run_depends_on_that_runs_slice():
    config = small_study()
    assert generator_keys(config, "ic") == [
        "seed",
        "datasets.digits",
        "generators.ic",
        "pretrain",
        "methods.simclr",
        "augmentations.standard.generator",
    ]
    config["generators"]["ic"]["conditioning"] = {"encoder": "encoders/f.safetensors"}
    assert generator_keys(config, "ic") == ["seed", "datasets.digits", "pretrain.dataset", "generators.ic"]


def test_evaluation_slices_leave_out_what_they_do_not_read():
    config = small_study()
    assert features_keys(config, "shapes") == [
        "seed",
        "datasets.digits",
        "datasets.shapes",
        "pretrain.dataset",
        "pretrain.backbone",
        "features",
    ]
    assert probe_keys(config, "shapes") == ["seed", "probe"]
    # One evaluation job per encoder reads what its features and probes read, of every dataset.
    assert sorted(evaluation_job_keys(config)) == sorted([*features_keys(config, "shapes"), "probe"])
    config["probe"]["protocol"] = "augmented"
    assert "features" in probe_keys(config, "shapes") and "datasets.shapes" in probe_keys(config, "shapes")


def test_a_slice_is_valid_on_its_own_and_resolves_to_itself():
    """What a rule passes to its command validates, and resolving it again changes nothing in the slice."""
    from genssl.config import load_config

    config = small_study()
    keys = pretrain_keys(config, "byol", "generative")
    text = to_json(config_slice(config, keys))
    assert config_slice(load_config(text=text), keys) == json.loads(text)


def test_the_similarity_analysis_compares_every_run_of_every_seed_and_the_conditioning_encoders():
    encoders = similarity_encoders(small_study(seeds=[0, 1]))
    assert list(encoders)[-1] == "conditioning/ic" and len(encoders) == 2 * 8 + 1
    assert encoders["simclr/p025"] == "results/features/digits/simclr/p025/digits.npz"
    assert encoders["simclr/p025-seed1"] == "results/features/digits/simclr/p025-seed1/digits.npz"
    assert encoders["conditioning/ic"] == "results/features/digits/conditioning/ic/digits.npz"
    assert not any("init" in name for name in encoders)


def test_a_conditioning_run_of_its_own_seed_and_a_methods_initialisation_read_what_they_need():
    config = small_study(seeds=[0, 1])
    config["generators"]["ic"]["conditioning"] = {"method": "simclr", "augmentation": "standard", "seed": 1000}
    assert conditioning_encoder_file(config, "ic") == (
        "results/pretrain/digits/simclr/standard-seed1000/encoder.safetensors"
    )
    config["augmentations"]["p025"]["seeds"] = [0]
    assert "augmentations.p025.seeds" not in pretrain_keys(config, "simclr", "p025")  # which runs exist
    assert stages.init_keys() == ["pretrain.backbone"]


def test_generators_trained_on_the_same_encoder_share_one_conditioning_encoder():
    generators = {
        "ic": {"backend": "icdiffusion"},
        "gan": {"backend": "icgan"},
        "gan_byol": {"backend": "icgan", "conditioning": {"method": "byol", "augmentation": "standard"}},
        "gan_file": {"backend": "icgan", "conditioning": {"encoder": "encoders/swav.safetensors"}},
        "diff_file": {"backend": "icdiffusion", "conditioning": {"encoder": "encoders/swav.safetensors"}},
        "sd": {"backend": "sd_unclip", "path": "weights/unclip"},
        "sd_too": {"backend": "sd_unclip", "path": "weights/unclip"},
    }
    augmentations = {"standard": {}} | {f"with_{g}": {"generator": g, "methods": ["simclr"]} for g in generators}
    config = small_study(generators=generators, augmentations=augmentations)
    assert conditioning_encoder_file(config, "ic") == "results/pretrain/digits/simclr/standard/encoder.safetensors"
    assert conditioning_encoder_file(config, "gan_file") == "encoders/swav.safetensors"
    assert conditioning_encoder_file(config, "sd") is None
    assert conditioning_encoders(config) == [
        ["diff_file", "gan_file"],
        ["gan", "ic"],
        ["gan_byol"],
        ["sd"],
        ["sd_too"],
    ]
    encoders = similarity_encoders(config)
    assert [name for name in encoders if name.startswith("conditioning/")] == [
        "conditioning/diff_file+gan_file",
        "conditioning/gan+ic",
        "conditioning/gan_byol",
        "conditioning/sd",
        "conditioning/sd_too",
    ]
    assert encoders["conditioning/gan+ic"] == "results/features/digits/conditioning/gan/digits.npz"


#: Files that may spell a results/ path: the contract itself.
CONTRACT = {"src/genssl/stages.py"}


def _string_literals(path):
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_nothing_but_the_contract_builds_a_results_path():
    builders = []
    for path in sorted((REPO / "src" / "genssl").rglob("*.py")):
        if str(path.relative_to(REPO)) not in CONTRACT:
            builders += [f"{path.relative_to(REPO)}: {s!r}" for s in _string_literals(path) if s.startswith("results/")]
    for path in [*sorted((REPO / "rules").glob("*.smk")), REPO / "Snakefile"]:
        builders += [f"{path.relative_to(REPO)}: {m}" for m in re.findall(r'"results/[^"]*"', path.read_text())]
    assert builders == []
