"""``dvc.yaml`` of a study (``genssl dvc-stages``): one DVC stage per expensive artifact, so that ``dvc push`` /
``dvc pull`` move them between machines and clusters.

Tracked (``outs``, cached and pushed): every prepared dataset store (``results/data/{dataset}``), every generator
trained in the workflow (``results/generators/...``), every variant store (``results/augment/...``) and every
pretraining run's directory with its checkpoint (``results/pretrain/{dataset}/{method}/{run}``). Not tracked:
features, probes, the similarity analysis and the report, which are cheap and recomputed from the pulled
artifacts. Each stage's ``cmd`` is the Snakemake target that makes it (``dvc repro`` works too), its ``params``
the keys of the configuration file it depends on (only keys written in that file: DVC reads them from it), its
``deps`` the tracked artifacts it reads. The ``report`` stage records ``results/report/metrics.json`` as DVC
metrics; the top-level ``plots`` are the training-loss curves of every run (``metrics.csv``).

Snakemake, not DVC, decides what to rerun. Files DVC checks out have new modification times and no Snakemake
metadata, so after ``dvc pull`` the pulled targets are touched in DAG order with ``snakemake --touch --forceall
TARGETS`` (:func:`tracked_targets`; ``make pull`` does both): that orders their times as the DAG expects and
records Snakemake's metadata (parameters, code) for them, so only what is downstream of them runs, and a later
change of a pulled stage's settings reruns it as usual.
"""

from collections.abc import Iterable
from typing import Any

from genssl.generate.registry import TRAINED
from genssl.study import augment_dir, pretrain_dir, runs, used_generators

#: How many cores the stages' Snakemake commands use.
CORES = "--cores all"


def _present(raw: dict[str, Any], keys: Iterable[str]) -> list[str]:
    """The dotted ``keys`` that the configuration file itself holds (DVC cannot read schema defaults)."""
    out = []
    for key in keys:
        node: Any = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            out.append(key)
    return out


def _stage(
    cmd_target: str, config_file: str, raw: dict[str, Any], params: list[str], deps: list[str], out: str
) -> dict[str, Any]:
    stage: dict[str, Any] = {"cmd": f"snakemake {CORES} --configfile {config_file} {cmd_target}"}
    if deps:
        stage["deps"] = sorted(set(deps))
    present = _present(raw, params)
    if present:
        stage["params"] = [{config_file: present}]
    stage["outs"] = [out]
    return stage


def _generator_params(config: dict[str, Any], name: str) -> tuple[list[str], list[str]]:
    """The params and deps of a generator: its entry, and for one conditioned on a run of the study, that run."""
    params, deps = [f"generators.{name}"], []
    conditioning = config["generators"][name].get("conditioning", {})
    if "method" in conditioning:
        method, augmentation = conditioning["method"], conditioning["augmentation"]
        params += [f"methods.{method}", f"augmentations.{augmentation}"]
        deps.append(f"results/pretrain/{config['pretrain']['dataset']}/{method}/{augmentation}")
    return params, deps


def dvc_stages(config: dict[str, Any], raw: dict[str, Any], config_file: str) -> dict[str, Any]:
    """The content of ``dvc.yaml`` for the study ``config`` (resolved) read from ``config_file`` (``raw``: the
    file's own content)."""
    dataset = config["pretrain"]["dataset"]
    data = f"results/data/{dataset}"
    stages: dict[str, Any] = {}
    for name in sorted(config["datasets"]):
        stages[f"prepare_{name}"] = _stage(
            f"results/data/{name}/manifest.json",
            config_file,
            raw,
            ["seed", f"datasets.{name}"],
            [],
            f"results/data/{name}",
        )
    for name in used_generators(config):
        params, deps = _generator_params(config, name)
        params = ["seed", *params]
        if config["generators"][name]["backend"] in TRAINED:
            weights = f"results/generators/{dataset}/{name}"
            stages[f"train_generator_{name}"] = _stage(
                f"{weights}/generator.json", config_file, raw, params, [data, *deps], weights
            )
            deps = [weights]
        stages[f"generate_{name}"] = _stage(
            f"{augment_dir(config, name)}/manifest.json",
            config_file,
            raw,
            params,
            [data, *deps],
            augment_dir(config, name),
        )
    for run in runs(config):
        directory = pretrain_dir(config, run)
        augmentation = config["augmentations"][run.augmentation]
        deps = [data]
        if augmentation.get("generator") is not None:
            deps.append(augment_dir(config, augmentation["generator"]))
        params = ["seed", "pretrain", f"methods.{run.method}", f"augmentations.{run.augmentation}"]
        stages[f"pretrain_{run.method}_{run.directory}"] = _stage(
            f"{directory}/encoder.safetensors", config_file, raw, params, deps, directory
        )
    stages["report"] = {
        "cmd": f"snakemake {CORES} --configfile {config_file}",
        "deps": sorted(pretrain_dir(config, run) for run in runs(config)),
        "params": [{config_file: _present(raw, ["downstream", "features", "probe", "similarity"])}],
        "metrics": [{"results/report/metrics.json": {"cache": False}}],
    }
    if not stages["report"]["params"][0][config_file]:
        del stages["report"]["params"]
    curves = {f"{pretrain_dir(config, run)}/metrics.csv": "loss" for run in runs(config)}
    return {"stages": stages, "plots": [{"training loss": {"x": "epoch", "y": curves, "template": "linear"}}]}


def tracked_targets(config: dict[str, Any]) -> list[str]:
    """The Snakemake targets whose outputs DVC tracks (what ``make pull`` touches after ``dvc pull``)."""
    dataset = config["pretrain"]["dataset"]
    targets = [f"results/data/{name}/manifest.json" for name in sorted(config["datasets"])]
    for name in used_generators(config):
        if config["generators"][name]["backend"] in TRAINED:
            targets.append(f"results/generators/{dataset}/{name}/generator.json")
        targets.append(f"{augment_dir(config, name)}/manifest.json")
    return targets + [f"{pretrain_dir(config, run)}/encoder.safetensors" for run in runs(config)]
