"""config/paper.yaml and config/paper_official_code.yaml against the settings their sources state
(tests/data/paper_sources.yaml: every entry names its source file; docs/paper-settings.md is the prose version)."""

from pathlib import Path

import pytest
import yaml

from genssl.augment import view_specs
from genssl.config import load_config
from genssl.train.plan import StepPlan
from tests.helpers import REPO

SOURCES = yaml.safe_load((Path(__file__).parent / "data" / "paper_sources.yaml").read_text())
STUDIES = ["paper.yaml", "paper_official_code.yaml"]
SSL_METHODS = ["simclr", "mocov2plus", "byol", "simsiam", "barlowtwins"]
IMAGENET_TRAIN = 1_281_167


def _config(name: str) -> dict:
    return load_config(REPO / "config" / name)


def _check(got, expected, what: str, source) -> None:
    assert got == pytest.approx(expected), f"{what}: {got!r}, the source says {expected!r} ({source})"


@pytest.mark.parametrize("study", STUDIES)
@pytest.mark.parametrize("method", SSL_METHODS)
def test_each_methods_pretraining_is_its_paper_repository_config(study, method):
    config = _config(study)
    own, pretrain, source = config["methods"][method], config["pretrain"], SOURCES["methods"][method]["official"]
    where = source["source"]
    _check(pretrain["backbone"]["name"], source["backbone"], "pretrain.backbone.name", where)
    _check(pretrain["epochs"], source["epochs"], "pretrain.epochs", where)
    _check(pretrain["warmup_epochs"], source["warmup_epochs"], "pretrain.warmup_epochs", where)
    optimizer = source["optimizer"]
    for key in ("lr", "weight_decay", "momentum"):
        _check(own[key], optimizer[key], f"methods.{method}.{key}", where)
    _check(own["optimizer"], optimizer["name"], f"methods.{method}.optimizer", where)
    if optimizer["name"] == "lars":
        for key in ("eta", "clip_lr", "exclude_bias_n_norm"):
            _check(own[key], optimizer[key], f"methods.{method}.{key}", where)
    else:  # solo-learn's SGD decays every parameter
        _check(
            own["exclude_bias_n_norm"],
            optimizer["exclude_bias_n_norm_wd"],
            f"methods.{method}.exclude_bias_n_norm",
            where,
        )
    batch = source["batch"]
    _check(
        own["batch_size"],
        batch["per_device"] * batch["devices"] * batch["nodes"],
        f"methods.{method}.batch_size",
        where,
    )
    _check(own["accumulate_steps"], batch["accumulate"], f"methods.{method}.accumulate_steps", where)
    plan = StepPlan.resolve(config, method, IMAGENET_TRAIN)
    _check(plan.images_per_step, batch["per_step"], f"methods.{method}: images per optimiser step", where)
    _check(plan.lr, source["effective_lr"], f"methods.{method}: the lr the optimiser receives", where)
    for key, value in source["heads"].items():
        _check(own[key], value, f"methods.{method}.{key}", where)
    for key in ("temperature", "queue_size", "lambda", "scale_loss"):
        if key in source:
            _check(own[key], source[key], f"methods.{method}.{key}", where)
    if "tau" in source:
        _check((own["base_tau"], own["final_tau"]), (source["tau"]["base"], source["tau"]["final"]), "tau", where)


@pytest.mark.parametrize("study", STUDIES)
@pytest.mark.parametrize("method", SSL_METHODS)
def test_each_methods_views_are_its_solo_learn_pipeline(study, method):
    pipeline = SOURCES["pipelines"][SOURCES["methods"][method]["official"]["pipeline"]]
    specs = view_specs(_config(study)["methods"][method]["views"])
    assert len(specs) == len(pipeline["views"]), pipeline["source"]
    for index, (spec, source) in enumerate(zip(specs, pipeline["views"], strict=True)):
        for key, value in source.items():
            if key not in ("crop_size", "equalize_p"):  # crop_size: the store's 224 px; equalisation: no source uses it
                expected = tuple(value) if isinstance(value, list) else value
                _check(getattr(spec, key), expected, f"methods.{method}.views, view {index}, {key}", pipeline["source"])


@pytest.mark.parametrize("study", STUDIES)
def test_the_common_schedule_and_training_settings(study):
    config, defaults = _config(study), SOURCES["defaults"]
    where = defaults["source"]
    _check(config["pretrain"]["min_lr_factor"], defaults["min_lr"], "pretrain.min_lr_factor", where)
    _check(config["pretrain"]["sync_bn"], defaults["sync_batchnorm"], "pretrain.sync_bn", where)
    # The whole ImageNet train folder is pretrained on (solo-learn holds nothing out; docs/paper-settings.md).
    _check(
        config["datasets"]["imagenet"]["val_fraction"],
        0.0,
        "datasets.imagenet.val_fraction",
        SOURCES["probe"]["official"]["source"],
    )


@pytest.mark.parametrize("study", STUDIES)
def test_the_linear_probe_is_the_paper_repositorys_linear_evaluation(study):
    config, source = _config(study), SOURCES["probe"]["official"]
    probe, where = config["probe"], source["source"]
    _check(probe["protocol"], "augmented", "probe.protocol", where)
    settings = probe["augmented"]
    _check(settings["optimizer"], source["optimizer"]["name"], "probe.augmented.optimizer", where)
    for key in ("lr", "weight_decay", "eta", "clip_lr", "exclude_bias_n_norm", "momentum"):
        _check(settings[key], source["optimizer"][key], f"probe.augmented.{key}", where)
    _check(settings["batch_size"], source["batch"]["per_step"], "probe.augmented.batch_size", where)
    _check(settings["lr"] * settings["batch_size"] / 256, source["effective_lr"], "probe: effective lr", where)
    _check(settings["epochs"], source["epochs"]["default"], "probe.augmented.epochs", where)
    _check(settings["epochs_by_dataset"], {"places365": source["epochs"]["places365"]}, "epochs_by_dataset", where)
    _check(settings["warmup_epochs"], source["scheduler"]["warmup_epochs"], "probe.augmented.warmup_epochs", where)
    for name, view in source["train_views"].items():
        _check(settings["crop_scale"], view["crop_scale"], f"probe.augmented.crop_scale ({name})", where)
        _check(settings["flip_p"], view["flip_p"], f"probe.augmented.flip_p ({name})", where)
    cifar = source["train_views"]["cifar"]["crop_size"]
    for dataset in ("cifar10", "cifar100"):
        _check(config["features"]["by_dataset"][dataset]["input_size"], cifar, f"features.by_dataset.{dataset}", where)
    _check(
        config["features"]["input_size"], source["train_views"]["imagenet"]["crop_size"], "features.input_size", where
    )


def _generative(config: dict) -> dict:
    return {name: a for name, a in config["augmentations"].items() if a.get("generator")}


def test_the_paper_study_samples_as_the_papers_text_says():
    config, text = _config("paper.yaml"), SOURCES["sampling"]["paper_text"]
    main = [a for a in _generative(config).values() if "methods" not in a]
    assert len(main) == 2
    for setting in main:
        _check(setting["p"], text["p"], "augmentations: p", text["source"])
        _check(setting["views"], text["views"], "augmentations: views", text["source"])
    for generator in config["generators"].values():
        _check(generator["variants"], text["variants_per_image"], "generators: variants", text["source"])
    paper = SOURCES["paper_text"]
    sweep = {0.0} | {a["p"] for a in _generative(config).values() if a["mode"] == "generative+standard"}
    _check(sorted(sweep), paper["p_sweep"], "the p sweep (p = 0: standard)", paper["source"])
    modes = {a["mode"] for a in _generative(config).values()}
    assert modes == set(paper["modes"]), paper["source"]


def test_the_official_code_study_samples_as_the_released_code():
    config, official = _config("paper_official_code.yaml"), SOURCES["sampling"]["official"]
    where = official["source"][0]
    settings = _generative(config)
    for setting in settings.values():
        _check(setting["views"], "second" if official["replaced_view"] == 1 else "both", "views", where)
        _check(setting["assignment"], {"per_epoch": "per_step"}[official["draw"]], "assignment", where)
        _check(setting["mode"], "generative+standard", "mode (the released code has no mode ablation)", where)
    main = [a["p"] for a in settings.values() if "methods" not in a]
    _check(main, [official["p"]["main_configs"]] * 2, "p of the per-method configs", where)
    sweep = official["p"]["p_sweep"]
    ablation = sorted(a["p"] for a in settings.values() if a.get("methods") == [sweep["method"]])
    _check([0.0, *ablation, 1.0], sweep["values"], "the p sweep (0: standard, 1: the main setting)", sweep["source"])


def test_diet_follows_the_diet_authors_launchers():
    config, source = _config("paper.yaml"), SOURCES["methods"]["diet"]["official"]
    diet = config["methods"]["diet"]
    _check(diet["optimizer"], source["optimizer"]["name"], "methods.diet.optimizer", source["source"])
    for key in ("lr", "weight_decay", "eps"):
        _check(diet[key], source["optimizer"][key], f"methods.diet.{key}", source["source"])
    _check(diet["label_smoothing"], source["label_smoothing"], "methods.diet.label_smoothing", source["source"])
    _check(diet["batch_size"], source["batch"]["per_step"], "methods.diet.batch_size", source["source"])
    _check(
        StepPlan.resolve(config, "diet", IMAGENET_TRAIN).lr,
        source["optimizer"]["lr"],
        "diet: effective lr",
        source["source"],
    )
