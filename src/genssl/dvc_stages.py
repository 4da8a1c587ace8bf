"""``dvc.yaml`` of a study (``genssl dvc-stages``): one DVC stage per expensive artifact, so that ``dvc push`` /
``dvc pull`` move them between machines and clusters.

Tracked (:func:`tracked`; ``outs``, cached and pushed): every prepared dataset store, every generator trained in
the workflow, every variant store and every pretraining run's directory with its checkpoint (a generator's own
conditioning run included; paths: :mod:`genssl.stages`). Not tracked: features, probes, the initialisations, the
similarity analysis and the report, which are cheap and recomputed from the pulled artifacts. Each stage's ``cmd``
is the Snakemake target that makes it (``dvc repro`` works too), its ``params`` the keys of the stage's config slice
(:mod:`genssl.stages`) that the configuration file itself holds (DVC reads them from it), its ``deps`` the tracked
artifacts it reads. The ``report`` stage records the report's ``metrics.json`` as DVC metrics; the top-level
``plots`` are the training-loss curves of every run.

Snakemake, not DVC, decides what to rerun. After ``dvc pull``, ``make pull`` checks every pulled artifact's
provenance against the configuration (``genssl status``, :mod:`genssl.status`): stale ones are removed, so
Snakemake remakes them, and the current ones are touched in DAG order with ``snakemake --touch --forceall
TARGETS`` (their files have new modification times and no Snakemake metadata): that orders their times as the DAG
expects and records Snakemake's metadata for them, so only what is downstream of them runs.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genssl import stages
from genssl.generate.registry import TRAINED
from genssl.study import Run, runs, separate_conditioning_runs, used_generators

#: How many cores the stages' Snakemake commands use.
CORES = "--cores all"


@dataclass(frozen=True)
class Tracked:
    """An artifact DVC tracks: its kind (``data``, ``generator``, ``variants``, ``run``), name (the dataset or
    generator; the run for a run), directory, the file Snakemake targets for it (``marker``, inside the
    directory), the tracked directories it is made from, its config slice and the run it is."""

    kind: str
    name: str
    directory: str
    marker: str
    inputs: tuple[str, ...]
    keys: tuple[str, ...]
    run: Run | None = None

    @property
    def target(self) -> str:
        """The Snakemake target that makes the artifact."""
        return f"{self.directory}/{self.marker}"


def tracked(config: dict[str, Any]) -> list[Tracked]:
    """Every tracked artifact of the study ``config`` (resolved), in DAG order."""
    data = stages.data_dir(config["pretrain"]["dataset"])
    out = [
        Tracked("data", name, stages.data_dir(name), stages.MANIFEST, (), tuple(stages.dataset_keys(name)))
        for name in sorted(config["datasets"])
    ]
    primary = [run for run in runs(config) if config["augmentations"][run.augmentation].get("generator") is None]
    primary += separate_conditioning_runs(config)  # a generator's own conditioning run, outside the comparison
    generative = [run for run in runs(config) if run not in primary]
    out += [_run(config, run, (data,)) for run in primary]
    for name in used_generators(config):
        keys = tuple(stages.generator_keys(config, name))
        inputs: tuple[str, ...] = (data,)
        conditioning = stages.conditioning_run(config, name)
        if config["generators"][name]["backend"] in TRAINED:
            trained_from = (data,) if conditioning is None else (data, stages.pretrain_dir(config, conditioning))
            weights = stages.generator_dir(config, name)
            out.append(Tracked("generator", name, weights, stages.GENERATOR_RECORD, trained_from, keys))
            inputs = (data, weights)
        out.append(Tracked("variants", name, stages.augment_dir(config, name), stages.MANIFEST, inputs, keys))
    for run in generative:
        generator = config["augmentations"][run.augmentation]["generator"]
        out.append(_run(config, run, (data, stages.augment_dir(config, generator))))
    return out


def _run(config: dict[str, Any], run: Run, inputs: tuple[str, ...]) -> Tracked:
    keys = tuple(stages.pretrain_keys(config, run.method, run.augmentation))
    return Tracked("run", run.name, stages.pretrain_dir(config, run), stages.ENCODER, inputs, keys, run)


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


def _stage_name(artifact: Tracked) -> str:
    if artifact.kind == "run":
        assert artifact.run is not None
        return f"pretrain_{artifact.run.method}_{artifact.run.directory}"
    return {"data": "prepare", "generator": "train_generator", "variants": "generate"}[artifact.kind] + (
        f"_{artifact.name}"
    )


def dvc_stages(config: dict[str, Any], raw: dict[str, Any], config_file: str) -> dict[str, Any]:
    """The content of ``dvc.yaml`` for the study ``config`` (resolved) read from ``config_file`` (``raw``: the
    file's own content)."""
    out: dict[str, Any] = {}
    artifacts = tracked(config)
    for artifact in artifacts:
        stage: dict[str, Any] = {"cmd": f"snakemake {CORES} --configfile {config_file} {artifact.target}"}
        if artifact.inputs:
            stage["deps"] = sorted(set(artifact.inputs))
        present = _present(raw, artifact.keys)
        if present:
            stage["params"] = [{config_file: present}]
        stage["outs"] = [artifact.directory]
        out[_stage_name(artifact)] = stage
    run_dirs = [a.directory for a in artifacts if a.kind == "run"]
    report_keys = _present(raw, ["downstream", "features", "probe", "similarity"])
    out["report"] = {
        "cmd": f"snakemake {CORES} --configfile {config_file}",
        "deps": sorted(run_dirs),
        **({"params": [{config_file: report_keys}]} if report_keys else {}),
        "metrics": [{f"{stages.REPORT}/metrics.json": {"cache": False}}],
    }
    curves = {f"{directory}/{stages.METRICS}": "loss" for directory in run_dirs}
    return {"stages": out, "plots": [{"training loss": {"x": "epoch", "y": curves, "template": "linear"}}]}
