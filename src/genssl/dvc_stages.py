"""``dvc.yaml`` of a study (``genssl dvc-stages``): one DVC stage per expensive artifact, so that ``dvc push`` /
``dvc pull`` move them between machines and clusters.

Tracked (``outs``, cached and pushed): every prepared dataset store, every generator trained in the workflow, every
variant store and every pretraining run's directory with its checkpoint (paths: :mod:`genssl.stages`). Not
tracked: features, probes, the similarity analysis and the report, which are cheap and recomputed from the pulled
artifacts. Each stage's ``cmd`` is the Snakemake target that makes it (``dvc repro`` works too), its ``params``
the keys of the stage's config slice (:mod:`genssl.stages`) that the configuration file itself holds (DVC reads
them from it), its ``deps`` the tracked artifacts it reads. The ``report`` stage records the report's
``metrics.json`` as DVC metrics; the top-level ``plots`` are the training-loss curves of every run.

Snakemake, not DVC, decides what to rerun. Files DVC checks out have new modification times and no Snakemake
metadata, so after ``dvc pull`` the pulled targets are touched in DAG order with ``snakemake --touch --forceall
TARGETS`` (:func:`tracked_targets`; ``make pull`` does both): that orders their times as the DAG expects and
records Snakemake's metadata (parameters, code) for them, so only what is downstream of them runs, and a later
change of a pulled stage's settings reruns it as usual.
"""

from collections.abc import Iterable
from typing import Any

from genssl import stages
from genssl.generate.registry import TRAINED
from genssl.study import runs, used_generators

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
    target: str, config_file: str, raw: dict[str, Any], keys: list[str], deps: list[str], out: str
) -> dict[str, Any]:
    stage: dict[str, Any] = {"cmd": f"snakemake {CORES} --configfile {config_file} {target}"}
    if deps:
        stage["deps"] = sorted(set(deps))
    present = _present(raw, keys)
    if present:
        stage["params"] = [{config_file: present}]
    stage["outs"] = [out]
    return stage


def _generator_deps(config: dict[str, Any], name: str) -> list[str]:
    """What a generator reads besides the pretraining store: the weights trained in the workflow, else the
    conditioning run of the study (for training) or nothing."""
    run = stages.conditioning_run(config, name)
    return [] if run is None else [stages.pretrain_dir(config, run)]


def dvc_stages(config: dict[str, Any], raw: dict[str, Any], config_file: str) -> dict[str, Any]:
    """The content of ``dvc.yaml`` for the study ``config`` (resolved) read from ``config_file`` (``raw``: the
    file's own content)."""
    data = stages.data_dir(config["pretrain"]["dataset"])
    out: dict[str, Any] = {}
    for name in sorted(config["datasets"]):
        directory = stages.data_dir(name)
        out[f"prepare_{name}"] = _stage(
            f"{directory}/{stages.MANIFEST}", config_file, raw, stages.dataset_keys(name), [], directory
        )
    for name in used_generators(config):
        keys, deps = stages.generator_keys(config, name), _generator_deps(config, name)
        if config["generators"][name]["backend"] in TRAINED:
            weights = stages.generator_dir(config, name)
            target = f"{weights}/{stages.GENERATOR_RECORD}"
            out[f"train_generator_{name}"] = _stage(target, config_file, raw, keys, [data, *deps], weights)
            deps = [weights]
        variants = stages.augment_dir(config, name)
        out[f"generate_{name}"] = _stage(
            f"{variants}/{stages.MANIFEST}", config_file, raw, keys, [data, *deps], variants
        )
    for run in runs(config):
        generator = config["augmentations"][run.augmentation].get("generator")
        deps = [data] if generator is None else [data, stages.augment_dir(config, generator)]
        keys = stages.pretrain_keys(config, run.method, run.augmentation)
        out[f"pretrain_{run.method}_{run.directory}"] = _stage(
            stages.encoder_file(config, run), config_file, raw, keys, deps, stages.pretrain_dir(config, run)
        )
    report_keys = _present(raw, ["downstream", "features", "probe", "similarity"])
    out["report"] = {
        "cmd": f"snakemake {CORES} --configfile {config_file}",
        "deps": sorted(stages.pretrain_dir(config, run) for run in runs(config)),
        **({"params": [{config_file: report_keys}]} if report_keys else {}),
        "metrics": [{f"{stages.REPORT}/metrics.json": {"cache": False}}],
    }
    curves = {f"{stages.pretrain_dir(config, run)}/{stages.METRICS}": "loss" for run in runs(config)}
    return {"stages": out, "plots": [{"training loss": {"x": "epoch", "y": curves, "template": "linear"}}]}


def tracked_targets(config: dict[str, Any]) -> list[str]:
    """The Snakemake targets whose outputs DVC tracks (what ``make pull`` touches after ``dvc pull``)."""
    targets = [f"{stages.data_dir(name)}/{stages.MANIFEST}" for name in sorted(config["datasets"])]
    for name in used_generators(config):
        if config["generators"][name]["backend"] in TRAINED:
            targets.append(f"{stages.generator_dir(config, name)}/{stages.GENERATOR_RECORD}")
        targets.append(f"{stages.augment_dir(config, name)}/{stages.MANIFEST}")
    return targets + [stages.encoder_file(config, run) for run in runs(config)]
