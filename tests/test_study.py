"""What a configuration asks for: runs per method, augmentation and seed, their paths, and the sweeps the report
tabulates."""

import pytest

from genssl.config import validate_config
from genssl.errors import ConfigError
from genssl.report.collect import sweeps
from genssl.study import (
    Run,
    augmentation_seeds,
    conditioning_run,
    evaluated_runs,
    init_runs,
    parse_directory,
    run_from_directory,
    runs,
    separate_conditioning_runs,
    study_run,
)
from tests.helpers import small_study


def test_an_augmentation_trains_the_methods_it_lists_and_standard_comes_first():
    names = [run.name for run in runs(small_study())]
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
    config = small_study(seeds=[3, 7])
    simclr = [run for run in runs(config) if run.method == "simclr" and run.augmentation == "standard"]
    assert simclr == [Run("simclr", "standard", 3, True), Run("simclr", "standard", 7, False)]
    assert [run.directory for run in simclr] == ["standard", "standard-seed7"]
    assert parse_directory("standard-seed7", config) == ("standard", 7)
    assert parse_directory("standard", config) == ("standard", 3)
    with pytest.raises(ValueError, match="not a run directory"):
        parse_directory("Standard-7", config)


def test_a_run_outside_the_study_is_refused_naming_the_key():
    config = small_study(seeds=[3, 7])
    assert study_run(config, "simclr", "p025") == Run("simclr", "p025", 3, True)
    assert study_run(config, "simclr", "standard", 7) == Run("simclr", "standard", 7, False)
    with pytest.raises(ConfigError, match=r"methods.moco: not configured; configured methods: byol, simclr"):
        study_run(config, "moco", "standard")
    with pytest.raises(ConfigError, match=r"augmentations.gen: not configured; configured: crop, generative"):
        study_run(config, "simclr", "gen")
    with pytest.raises(ConfigError, match=r"augmentations.p025.methods: does not list byol"):
        study_run(config, "byol", "p025")


def test_an_ablation_may_run_fewer_of_the_studys_seeds():
    config = small_study(seeds=[0, 1, 2])
    config["augmentations"]["p025"]["seeds"] = [0]
    assert [run for run in runs(config) if run.augmentation == "p025"] == [Run("simclr", "p025", 0, True)]
    assert augmentation_seeds(config, "p025") == [0] and augmentation_seeds(config, "standard") == [0, 1, 2]
    assert len(runs(config)) == 3 * 8 - 2
    assert study_run(config, "simclr", "p025") == Run("simclr", "p025", 0, True)


def test_a_generator_may_be_conditioned_on_a_run_outside_the_comparison():
    config = small_study(seeds=[0, 1])
    config["generators"]["ic"]["conditioning"] = {"method": "simclr", "augmentation": "standard", "seed": 1000}
    own = Run("simclr", "standard", 1000, False)
    assert conditioning_run(config, "ic") == own and own.directory == "standard-seed1000"
    assert separate_conditioning_runs(config) == [own] and own not in runs(config)
    config["generators"]["ic"]["conditioning"] = {"method": "simclr", "augmentation": "standard"}
    assert conditioning_run(config, "ic") == Run("simclr", "standard", 0, True)  # the first seed: a compared run
    assert separate_conditioning_runs(config) == []


def test_every_method_is_evaluated_at_its_initialisation_for_every_seed():
    config = small_study(seeds=[0, 1])
    assert init_runs(config) == [
        Run("byol", "init", 0, True),
        Run("byol", "init", 1, False),
        Run("simclr", "init", 0, True),
        Run("simclr", "init", 1, False),
    ]
    assert evaluated_runs(config) == runs(config) + init_runs(config)
    assert run_from_directory("simclr", "init-seed1", config) == Run("simclr", "init", 1, False)


def test_sweeps_group_augmentations_that_differ_in_one_setting():
    (p_sweep,) = sweeps(small_study(), "p")
    assert p_sweep == [(0.0, "standard"), (0.25, "p025"), (0.5, "generative"), (1.0, "p100")]
    (modes,) = sweeps(small_study(), "mode")
    assert modes == [("generative-only", "only"), ("generative+crop", "crop"), ("generative+standard", "generative")]


def test_an_augmentation_listing_an_unknown_method_is_refused():
    with pytest.raises(Exception, match=r"augmentations.p025.methods: 'mocov2plus' is not a configured method"):
        config = small_study()
        config["augmentations"]["p025"]["methods"] = ["mocov2plus"]
        validate_config(config)
