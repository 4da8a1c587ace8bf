import copy
import json

import pytest

from genssl.config import load_config, load_schema, typed_overrides, validate_config
from genssl.data.sources import SOURCES
from genssl.errors import ConfigError
from tests.helpers import REPO


def _errors(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    return str(info.value)


def test_default_config_validates_with_defaults_filled():
    config = load_config(REPO / "config" / "config.yaml")
    digits = config["datasets"]["digits"]
    assert config["seed"] == 0
    assert digits["image_size"] == 16 and config["seeds"] == [0, 1, 2]
    assert digits["resize"] == "center_crop"
    assert digits["encoding"] == "auto"
    assert digits["val_fraction"] == 0.1 and digits["test_fraction"] == 0.2
    assert config["datasets"]["shapes"]["n_per_class"] == 200
    # Keys of other sources get no defaults here.
    assert "root" not in digits and "n_per_class" not in digits and "small" not in digits


def test_source_specific_defaults_are_filled_only_for_their_source():
    config = validate_config(
        {
            "datasets": {
                "places": {"source": "places365", "root": "/data/places"},
                "inat": {"source": "inaturalist", "root": "/data/inat"},
            }
        }
    )
    assert config["datasets"]["places"]["small"] is True
    assert config["datasets"]["places"]["download"] is False
    assert config["datasets"]["places"]["skip_corrupt"] is False
    assert "version" not in config["datasets"]["places"]
    assert config["datasets"]["inat"]["version"] == "2018"


def test_validate_does_not_modify_its_argument():
    config = {"datasets": {"digits": {"source": "digits"}}}
    before = copy.deepcopy(config)
    validate_config(config)
    assert config == before


def test_negative_image_size_names_the_key():
    message = _errors({"datasets": {"digits": {"source": "digits", "image_size": -3}}})
    assert "datasets.digits.image_size: -3 is less than the minimum of 8" in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"datasets": {"x": {"source": "mnist"}}}, "datasets.x.source: 'mnist' is not one of ['digits', 'shapes'"),
        ({"datasets": {"c": {"source": "cifar10"}}}, "datasets.c: 'root' is a required property"),
        ({"datasets": {"d": {"source": "digits", "root": "/x"}}}, "datasets.d: Unevaluated properties are not allowed"),
        ({"datasets": {"d": {"image_size": 32}}}, "datasets.d: 'source' is a required property"),
        ({"datasets": {"d": {"source": "digits", "resize": "crop"}}}, "datasets.d.resize: 'crop' is not one of"),
        ({"datasets": {"d": {"source": "digits", "val_fraction": 0.9}}}, "datasets.d.val_fraction: 0.9 is greater"),
        ({"datasets": {"Bad-Name": {"source": "digits"}}}, "datasets: 'Bad-Name' does not match"),
        ({"datasets": {}, "sed": 1}, "(top level): Additional properties are not allowed ('sed' was unexpected)"),
        ({"datasets": {}, "seed": -1}, "seed: -1 is less than the minimum of 0"),
        (
            {"datasets": {"f": {"source": "imagefolder", "root": "/x", "resize": "shorter_side", "encoding": "raw"}}},
            "datasets.f.encoding: 'raw' stores need one image shape",
        ),
        (
            {"seeds": [0, 1], "augmentations": {"standard": {}, "p025": {"seeds": [1, 5]}}},
            "augmentations.p025.seeds: [5] are not among the study's seeds [0, 1]",
        ),
        ({"augmentations": {"init": {}}}, "augmentations.init: the name is reserved for the methods' initialisations"),
        (
            {"generators": {"g": {"backend": "icgan", "conditioning": {"encoder": "e.safetensors", "seed": 3}}}},
            "generators.g.conditioning: give either `encoder` (a file) or `method` and `augmentation`",
        ),
        (
            {"methods": {"simclr": {}, "diet": {}}, "augmentations": {"g": {"views": "second"}}},
            "augmentations.g.views: 'second' keeps the first view real, but diet train(s) on one view",
        ),
        ({"augmentations": {"g": {"views": "one"}}}, "augmentations.g.views: 'one' is not one of ['both', 'second']"),
        (
            {"augmentations": {"g": {"assignment": "per_epoch"}}},
            "augmentations.g.assignment: 'per_epoch' is not one of",
        ),
        ({"methods": {"byol": {"accumulate_steps": 0}}}, "methods.byol.accumulate_steps: 0 is less than the minimum"),
    ],
)
def test_bad_configs_are_rejected_naming_the_key(config, expected):
    assert expected in _errors(config)


def test_every_problem_is_reported_at_once():
    message = _errors({"datasets": {"a": {"source": "digits", "image_size": 4}, "b": {"source": "nope"}}})
    assert "datasets.a.image_size" in message and "datasets.b.source" in message


def test_load_config_reports_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read configuration file .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)


def test_schema_sources_match_the_implemented_sources():
    enum = load_schema()["$defs"]["dataset"]["properties"]["source"]["enum"]
    assert sorted(enum) == sorted(SOURCES)


def test_exponent_without_a_decimal_point_gets_a_hint():
    config = {"datasets": {"d": {"source": "digits"}}, "methods": {"simclr": {"weight_decay": "1e-5"}}}
    assert "methods.simclr.weight_decay: '1e-5' is not of type 'number' (YAML reads 1e-5 as text" in _errors(config)


def test_json_text_keeps_exponent_numbers():
    """The rules pass configs as JSON, where json.dumps writes 1e-05: it must stay a number."""
    config = {"datasets": {"d": {"source": "digits"}}, "pretrain": {"dataset": "d"}}
    text = json.dumps({**config, "methods": {"simclr": {"weight_decay": 1e-5}}})
    assert "1e-05" in text
    assert load_config(text=text)["methods"]["simclr"]["weight_decay"] == 1e-5


def test_command_line_lists_and_mappings_get_yaml_scalars():
    """Snakemake reads the items of `--config seeds=[0,1]` and `methods={simclr: {lr: 0.1}}` as strings."""
    config = {"seed": 1, "seeds": ["0", "1"], "methods": {"simclr": {"lr": "0.1", "name": "x"}, "byol": {"lr": 0.2}}}
    overrides = {"seed": 1, "seeds": ["0", "1"], "methods": {"simclr": {"lr": "0.1", "name": "x"}}}
    assert typed_overrides(config, overrides) == {
        "seed": 1,
        "seeds": [0, 1],
        "methods": {"simclr": {"lr": 0.1, "name": "x"}, "byol": {"lr": 0.2}},
    }
    assert typed_overrides({"seed": 0, "name": "007"}, {"name": "007"}) == {"seed": 0, "name": "007"}
