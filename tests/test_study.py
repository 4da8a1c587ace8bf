"""What a configuration asks for: runs per method, augmentation and seed, their paths, and the sweeps the report
tabulates."""

import pytest

from genssl.config import validate_config
from genssl.report.collect import sweeps
from genssl.study import (
    Run,
    conditioning_encoder_file,
    conditioning_encoders,
    parse_directory,
    probe_files,
    runs,
    similarity_encoders,
)


def study(**extra):
    return validate_config(
        {
            "datasets": {"digits": {"source": "digits"}, "shapes": {"source": "shapes"}},
            "pretrain": {"dataset": "digits"},
            "methods": {"simclr": {}, "byol": {}},
            "generators": {"ic": {"backend": "icdiffusion"}},
            "augmentations": {
                "standard": {},
                "generative": {"generator": "ic"},
                "p025": {"generator": "ic", "p": 0.25, "methods": ["simclr"]},
                "p100": {"generator": "ic", "p": 1.0, "methods": ["simclr"]},
                "only": {"generator": "ic", "mode": "generative-only", "methods": ["simclr"]},
                "crop": {"generator": "ic", "mode": "generative+crop", "methods": ["simclr"]},
            },
            "downstream": ["digits", "shapes"],
            **extra,
        }
    )


def test_an_augmentation_trains_the_methods_it_lists_and_standard_comes_first():
    names = [run.name for run in runs(study())]
    assert names == [
        "byol/standard",
        "byol/generative",
        "simclr/standard",
        "simclr/crop",
        "simclr/generative",
        "simclr/only",
        "simclr/p025",
        "simclr/p100",
    ]


def test_replicate_seeds_live_beside_the_first_seed():
    config = study(seeds=[3, 7])
    simclr = [run for run in runs(config) if run.method == "simclr" and run.augmentation == "standard"]
    assert simclr == [Run("simclr", "standard", 3, True), Run("simclr", "standard", 7, False)]
    assert [run.directory for run in simclr] == ["standard", "standard-seed7"]
    assert parse_directory("standard-seed7", config) == ("standard", 7)
    assert parse_directory("standard", config) == ("standard", 3)
    assert "results/probe/digits/simclr/standard-seed7/shapes.json" in probe_files(config)
    assert len(probe_files(config)) == 2 * 8 * 2
    with pytest.raises(ValueError, match="not a run directory"):
        parse_directory("Standard-7", config)


def test_the_similarity_analysis_compares_first_seed_runs_and_conditioning_encoders():
    encoders = similarity_encoders(study(seeds=[0, 1]))
    assert list(encoders)[-1] == "conditioning/ic" and len(encoders) == 9
    assert encoders["simclr/p025"] == "results/features/digits/simclr/p025/digits.npz"
    assert encoders["conditioning/ic"] == "results/features/digits/conditioning/ic/digits.npz"


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
    config = study(generators=generators, augmentations=augmentations)
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


def test_sweeps_group_augmentations_that_differ_in_one_setting():
    (p_sweep,) = sweeps(study(), "p")
    assert p_sweep == [(0.0, "standard"), (0.25, "p025"), (0.5, "generative"), (1.0, "p100")]
    (modes,) = sweeps(study(), "mode")
    assert modes == [("generative-only", "only"), ("generative+crop", "crop"), ("generative+standard", "generative")]


def test_an_augmentation_listing_an_unknown_method_is_refused():
    with pytest.raises(Exception, match=r"augmentations.p025.methods: 'mocov2plus' is not a configured method"):
        config = study()
        config["augmentations"]["p025"]["methods"] = ["mocov2plus"]
        validate_config(config)
