"""Load and validate a study configuration against ``src/genssl/schema.yaml``.

The schema (JSON Schema 2020-12, defaults inside) is the single definition of the configuration. The
Snakefile validates with ``snakemake.utils.validate`` and every ``genssl`` command with :func:`validate_config`;
both use the same schema and fill in the same defaults. Errors name the key path, e.g.
``datasets.digits.image_size: -3 is less than the minimum of 8``.
"""

import copy
import json
import os
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from genssl.errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
#: PyYAML's safe loader, libyaml's C implementation where PyYAML was built with it (the schema parses in 0.02 s
#: instead of 0.14 s, which every job of a study pays).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Resize policies whose output shape is the same for every image.
FIXED_SHAPE_RESIZE = ("center_crop", "stretch")


@cache
def load_schema() -> dict[str, Any]:
    """The parsed ``src/genssl/schema.yaml``."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return yaml.load(f, Loader=SAFE_LOADER)


def _with_defaults(validator_class: type) -> type:
    """Extend a validator class so that validating an object fills in the defaults of its absent properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator: Any, props: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]) -> Iterator:
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def key_path(path: Any) -> str:
    """Dotted key path of a JSON-Schema error path.

    ``["datasets", "digits", "image_size"]`` becomes ``datasets.digits.image_size``; the root is ``(top level)``.
    """
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def schema_errors(config: dict[str, Any]) -> list[str]:
    """Fill defaults into ``config`` in place and return one ``key.path: problem`` line per schema violation."""
    schema = load_schema()
    validator_class = _with_defaults(jsonschema.validators.validator_for(schema))
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{key_path(e.absolute_path)}: {e.message}{_hint(e)}" for e in errors]


def _hint(error: jsonschema.ValidationError) -> str:
    """YAML 1.1 (PyYAML, Snakemake) reads ``1e-5`` as a string: say how to write the number."""
    if error.validator == "type" and isinstance(error.instance, str) and "e" in error.instance.lower():
        try:
            value = float(error.instance)
        except ValueError:
            return ""
        return f" (YAML reads {error.instance} as text; write it with a decimal point, e.g. {value:.1e})"
    return ""


def semantic_errors(config: dict[str, Any]) -> list[str]:
    """Rules that span several keys and that JSON Schema cannot state clearly."""
    problems = []
    for name, ds in config.get("datasets", {}).items():
        if ds.get("encoding") == "raw" and ds.get("resize") not in FIXED_SHAPE_RESIZE:
            problems.append(
                f"datasets.{name}.encoding: 'raw' stores need one image shape, but resize is "
                f"{ds.get('resize')!r}; use resize center_crop or stretch, or an encoded store (png, jpeg, webp)"
            )
    methods = config.get("methods", {})
    pretrain = config.get("pretrain", {})
    if methods and pretrain.get("dataset") not in config.get("datasets", {}):
        known = ", ".join(sorted(config.get("datasets", {}))) or "(none)"
        problems.append(f"pretrain.dataset: {pretrain.get('dataset')!r} is not a configured dataset; datasets: {known}")
    problems += _generator_errors(config)
    problems += _seed_errors(config)
    problems += _evaluation_errors(config)
    moco = methods.get("mocov2plus")
    if moco is not None:
        batch = moco.get("batch_size", pretrain.get("batch_size"))
        if moco["queue_size"] % batch:
            problems.append(
                f"methods.mocov2plus.queue_size: {moco['queue_size']} is not a multiple of the global batch {batch}"
            )
    return problems


#: The keys of `generators.*` that only some backends take.
BACKEND_KEYS = {
    "sd_unclip": {"path", "input_size", "guidance_scale", "noise_level", "prompt", "inference_steps"}
    | {"pipeline_size", "channels_last", "compile"},
    "sd_image_variation": {"path", "input_size", "guidance_scale", "inference_steps"}
    | {"pipeline_size", "channels_last", "compile"},
    "icdiffusion": {"guidance_scale", "conditioning", "neighbours", "unet", "train", "sampler", "inference_steps"},
    "icgan": {"conditioning", "neighbours", "truncation", "architecture", "train", "resolution"},
    "icgan_pretrained": {"generator_path", "encoder_path", "truncation", "architecture", "input_size", "resolution"},
}
#: The required local paths of the backends whose weights come from outside the workflow, and what they hold.
BACKEND_FILES = {
    "sd_unclip": {"path": "the local directory of its diffusers weights"},
    "sd_image_variation": {"path": "the local directory of its diffusers weights"},
    "icgan_pretrained": {
        "generator_path": "the IC-GAN release's generator state dict (G_ema*.pth)",
        "encoder_path": "the SwAV ResNet-50 of the release (swav_800ep_pretrain.pth.tar)",
    },
}


def _generator_errors(config: dict[str, Any]) -> list[str]:
    problems = []
    generators = config.get("generators", {})
    own = set().union(*BACKEND_KEYS.values())
    for name, gen in generators.items():
        backend = gen["backend"]
        for key in sorted(set(gen) & own - BACKEND_KEYS[backend]):
            problems.append(f"generators.{name}.{key}: not a setting of backend {backend!r}")
        for key, what in BACKEND_FILES.get(backend, {}).items():
            if key not in gen:
                problems.append(f"generators.{name}.{key}: {backend} needs {what}")
        conditioning = gen.get("conditioning")
        if conditioning is not None and (
            ("encoder" in conditioning) == ("method" in conditioning) or {"encoder", "seed"} <= set(conditioning)
        ):
            problems.append(
                f"generators.{name}.conditioning: give either `encoder` (a file) or `method` and `augmentation` "
                "(and `seed`: a pretraining run of this study)"
            )
        elif conditioning is not None and "method" in conditioning:
            method, augmentation = conditioning["method"], conditioning.get("augmentation", "standard")
            if method not in config.get("methods", {}):
                problems.append(f"generators.{name}.conditioning.method: {method!r} is not a configured method")
            aug = config.get("augmentations", {}).get(augmentation)
            if aug is None:
                problems.append(
                    f"generators.{name}.conditioning.augmentation: {augmentation!r} is not a configured augmentation"
                )
            elif aug.get("generator") is not None:
                problems.append(
                    f"generators.{name}.conditioning.augmentation: {augmentation!r} uses generator "
                    f"{aug['generator']!r}; the conditioning encoder must be trained without generated images"
                )
    for name, aug in config.get("augmentations", {}).items():
        for method in aug.get("methods", []):
            if method not in config.get("methods", {}):
                problems.append(f"augmentations.{name}.methods: {method!r} is not a configured method")
        if aug.get("views") == "second":
            one_view = [
                method
                for method in aug.get("methods", config.get("methods", {}))
                if len(config.get("methods", {}).get(method, {}).get("views", {}).get("blur_p", [0, 0])) < 2
            ]
            if one_view:
                problems.append(
                    f"augmentations.{name}.views: 'second' keeps the first view real, but {', '.join(one_view)} "
                    "train(s) on one view; give the setting `methods` without them, or views: both"
                )
        generator = aug.get("generator")
        if generator is not None and generator not in generators:
            known = ", ".join(sorted(generators)) or "(none)"
            problems.append(f"augmentations.{name}.generator: {generator!r} is not a configured generator; {known}")
    return problems


def _seed_errors(config: dict[str, Any]) -> list[str]:
    """An augmentation's own ``seeds`` are some of the study's (so that its runs pair with the others seed by seed);
    ``init`` names the methods' initialisations, not an augmentation (:data:`genssl.study.INIT`)."""
    from genssl.study import INIT, seeds

    problems = []
    study = seeds(config)
    for name, aug in config.get("augmentations", {}).items():
        if name == INIT:
            problems.append(
                f"augmentations.{INIT}: the name is reserved for the methods' initialisations (the random-init "
                "baseline of every study); rename the augmentation"
            )
        extra = sorted(set(aug.get("seeds") or []) - set(study))
        if extra:
            problems.append(f"augmentations.{name}.seeds: {extra} are not among the study's seeds {study}")
    return problems


def _evaluation_errors(config: dict[str, Any]) -> list[str]:
    """Downstream and similarity datasets must be configured datasets."""
    datasets = config.get("datasets", {})
    known = ", ".join(sorted(datasets)) or "(none)"
    named = [(f"downstream[{i}]", name) for i, name in enumerate(config.get("downstream", []))]
    similarity = config.get("similarity", {}).get("dataset")
    if similarity is not None:
        named.append(("similarity.dataset", similarity))
    return [
        f"{key}: {name!r} is not a configured dataset; datasets: {known}" for key, name in named if name not in datasets
    ]


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a validated deep copy of ``config`` with every default filled in.

    Raises :class:`ConfigError` listing every problem as ``key.path: message``.
    """
    resolved = copy.deepcopy(dict(config))
    problems = schema_errors(resolved)
    if not problems:
        problems = semantic_errors(resolved)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return resolved


def read_config(path: str | os.PathLike[str] | None = None, text: str | None = None) -> dict[str, Any]:
    """Parse a YAML or JSON configuration from ``path`` or from the string ``text`` (not validated). A YAML error
    names the file, line and column.

    Text that is valid JSON (what the Snakemake rules pass) is read as JSON, so ``1e-05`` stays a number.
    """
    if (path is None) == (text is None):
        raise ValueError("give exactly one of path and text")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read configuration file {path}: {err.strerror}") from None
    assert text is not None
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        try:
            config = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{_yaml_location(path, err)}: not valid YAML ({_yaml_problem(err)})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"configuration {path or '(inline)'} must be a mapping, not {type(config).__name__}")
    return config


def load_config(path: str | os.PathLike[str] | None = None, text: str | None = None) -> dict[str, Any]:
    """Read (:func:`read_config`) and validate (:func:`validate_config`) a configuration."""
    return validate_config(read_config(path, text))


def _yaml_location(path: str | os.PathLike[str] | None, err: yaml.YAMLError) -> str:
    """``file:line:column`` of a YAML error (1-based), or the file alone."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    name = str(path) if path is not None else "configuration (inline)"
    return name if mark is None else f"{name}:{mark.line + 1}:{mark.column + 1}"


def _yaml_problem(err: yaml.YAMLError) -> str:
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    return ", ".join(p for p in parts if p) or str(err)


def typed_overrides(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the items of Snakemake's ``--config`` lists and mappings read as YAML scalars.

    Snakemake parses a ``--config`` value's top level as int, float or bool, but a list or mapping with YAML's base
    loader, whose items are all strings (``seeds=[0,1]`` gives ``["0", "1"]``). Each string item of ``overrides``
    inside a list or mapping is read again as YAML and replaced where that gives a scalar (``"0"`` -> 0, ``"0.1"`` ->
    0.1, ``"true"`` -> True); ``config`` already holds ``overrides`` merged in, as Snakemake does."""

    def scalar(value: str) -> Any:
        try:
            read = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return read if isinstance(read, int | float | bool) else value

    def typed(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: typed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [typed(item) for item in value]
        return scalar(value) if isinstance(value, str) else value

    def merged(base: Any, over: Any) -> Any:
        if isinstance(over, dict) and isinstance(base, dict):
            return {**base, **{key: merged(base.get(key), item) for key, item in over.items()}}
        return typed(over)

    top = {key: value for key, value in overrides.items() if isinstance(value, dict | list)}
    return {**config, **{key: merged(config.get(key), value) for key, value in top.items()}}


def seed_override_error(overrides: Mapping[str, Any]) -> str | None:
    """``--config seed=S`` alone is ambiguous: ``seed`` decides the data splits and generated variants, ``seeds`` the
    pretraining runs. The problem with ``overrides`` (Snakemake's ``--config`` keys), or None."""
    if "seed" in overrides and "seeds" not in overrides:
        s = overrides["seed"]
        return (
            f"--config seed={s}: `seed` decides the data splits and generated variants; the pretraining seeds are "
            f"`seeds`. Give both to change the whole study (--config seed={s} 'seeds=[{s}]'), or seeds alone to "
            "add or change pretraining seeds over the same data"
        )
    return None


def weight_path_errors(config: Mapping[str, Any], used: list[str]) -> list[str]:
    """One line per local weight path (``BACKEND_FILES``) of a ``used`` generator that does not exist."""
    problems = []
    for name in used:
        gen = config["generators"][name]
        for key, what in BACKEND_FILES.get(gen["backend"], {}).items():
            if key in gen and not Path(gen[key]).exists():
                problems.append(f"generators.{name}.{key}: {gen[key]} does not exist ({what})")
    return problems


def config_entry(config: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    """The resolved entry ``config[section][name]`` (section ``datasets``, ``generators``, ...); an unknown name
    lists the configured ones."""
    entries = config.get(section, {})
    if name not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise ConfigError(f"{section}.{name}: no such {section[:-1]} in the configuration; configured: {known}")
    return entries[name]


def dataset_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The resolved configuration of dataset ``name``."""
    return config_entry(config, "datasets", name)


def generator_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The resolved configuration of generator ``name``."""
    return config_entry(config, "generators", name)


def to_json(config: Mapping[str, Any]) -> str:
    """Canonical JSON of a configuration (sorted keys), as recorded in manifests and passed between rules."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def downstream_datasets(config: Mapping[str, Any]) -> list[str]:
    """The datasets every encoder is evaluated on: ``downstream``, or the pretraining dataset when it is empty."""
    return list(config["downstream"]) or [config["pretrain"]["dataset"]]


def similarity_dataset(config: Mapping[str, Any]) -> str:
    """The dataset of the similarity analysis' evaluation set: ``similarity.dataset`` or the pretraining dataset."""
    return config["similarity"]["dataset"] or config["pretrain"]["dataset"]


def encoder_input_size(config: Mapping[str, Any], dataset: str | None = None) -> int:
    """The side of the encoders' input on ``dataset``: its ``features.by_dataset`` entry's ``input_size``, else
    ``features.input_size``, else the side of the pretraining images."""
    size = config["features"]["by_dataset"].get(dataset, {}).get("input_size", config["features"]["input_size"])
    return size if size is not None else config["datasets"][config["pretrain"]["dataset"]]["image_size"]


def encoder_crop_fraction(config: Mapping[str, Any], dataset: str | None = None) -> float:
    """The centre-crop fraction of the evaluation preprocessing on ``dataset`` (``features.by_dataset``, else
    ``features.crop_fraction``)."""
    return config["features"]["by_dataset"].get(dataset, {}).get("crop_fraction", config["features"]["crop_fraction"])
