"""What a study configuration asks for: its pretraining runs and the generators they use (where each result lives
is the stage contract, :mod:`genssl.stages`).

A run is (method, augmentation, seed). ``seeds`` lists the study's pretraining seeds (default: ``[seed]``); every
augmentation is trained by the methods of its ``methods`` list (default: all configured methods) once per seed of
its own ``seeds`` (default: the study's; a subset of them, so that an ablation can run fewer seeds than the main
comparison and still pair with it seed by seed). The run with the study's first seed lives at the contract's paths,
``.../{method}/{augmentation}/``; a replicate with another seed s at ``.../{method}/{augmentation}-seed{s}/``
(augmentation names cannot hold a hyphen, so the two never collide). Data splits, generated variants, probes and
bootstrap intervals always use ``seed``; a replicate changes only the pretraining's own random draws
(initialisation, data order, views, variant choices).

Besides the runs, the study evaluates each method's *initialisation* (:data:`INIT`, :func:`init_runs`): the
backbone a run of that method and seed starts from, untrained, as the random-init baseline that a trained encoder
must beat. And a generator trained in the workflow may be conditioned on a run with a seed outside the study's
(``generators.*.conditioning.seed``): a pretraining run of its own, which no comparison includes.
"""

import re
from dataclasses import dataclass
from typing import Any

from genssl.errors import ConfigError

#: The directory-name suffix of a replicate run.
REPLICATE = re.compile(r"^(?P<augmentation>[a-z][a-z0-9_]*)(?:-seed(?P<seed>\d+))?$")
#: The prefix of a generator's conditioning encoder among the encoders of the similarity analysis.
CONDITIONING = "conditioning"
#: The pseudo-augmentation of a method's untrained initialisation (a name no augmentation may take).
INIT = "init"


def seeds(config: dict[str, Any]) -> list[int]:
    """The study's pretraining seeds: ``seeds``, or ``[seed]``."""
    return list(config.get("seeds") or [config["seed"]])


def augmentation_seeds(config: dict[str, Any], augmentation: str) -> list[int]:
    """The seeds ``augmentation`` is trained with: its own ``seeds`` (a subset of the study's), or the study's."""
    return list(config["augmentations"][augmentation].get("seeds") or seeds(config))


@dataclass(frozen=True)
class Run:
    """One pretraining run and its place in the results."""

    method: str
    augmentation: str
    seed: int
    primary: bool

    @property
    def directory(self) -> str:
        """``{augmentation}`` for the first seed, ``{augmentation}-seed{seed}`` for a replicate."""
        return self.augmentation if self.primary else f"{self.augmentation}-seed{self.seed}"

    @property
    def name(self) -> str:
        """``{method}/{directory}``: the run's path below ``results/{stage}/{dataset}/``."""
        return f"{self.method}/{self.directory}"


def parse_directory(directory: str, config: dict[str, Any]) -> tuple[str, int]:
    """``(augmentation, seed)`` of a run directory name (``standard``, ``standard-seed1``)."""
    match = REPLICATE.match(directory)
    if match is None:
        raise ValueError(f"{directory!r} is not a run directory name (augmentation[-seedN])")
    seed = match["seed"]
    return match["augmentation"], int(seed) if seed is not None else seeds(config)[0]


def run_from_directory(method: str, directory: str, config: dict[str, Any]) -> Run:
    """The run of ``method`` whose directory name is ``directory`` (:func:`parse_directory`)."""
    augmentation, seed = parse_directory(directory, config)
    return make_run(config, method, augmentation, seed)


def make_run(config: dict[str, Any], method: str, augmentation: str, seed: int) -> Run:
    """The run ``(method, augmentation, seed)``, placed by the study's first seed."""
    return Run(method, augmentation, seed, seed == seeds(config)[0])


def augmentation_methods(config: dict[str, Any], augmentation: str) -> list[str]:
    """The methods that train with ``augmentation``: its ``methods`` list, or every configured method."""
    listed = config["augmentations"][augmentation].get("methods")
    return sorted(config["methods"]) if listed is None else sorted(listed)


def study_run(config: dict[str, Any], method: str, augmentation: str, seed: int | None = None) -> Run:
    """The run ``(method, augmentation, seed)`` of the study (``seed`` default: the first of the augmentation's
    seeds); a method or augmentation the configuration does not ask for is refused, naming the key. The seed is not
    checked: a rule passes its command the run's slice of the configuration, which holds no ``seeds``."""
    if method not in config["methods"]:
        known = ", ".join(sorted(config["methods"])) or "(none)"
        raise ConfigError(f"methods.{method}: not configured; configured methods: {known}")
    if augmentation not in config["augmentations"]:
        raise ConfigError(
            f"augmentations.{augmentation}: not configured; configured: {', '.join(sorted(config['augmentations']))}"
        )
    if method not in augmentation_methods(config, augmentation):
        raise ConfigError(f"augmentations.{augmentation}.methods: does not list {method}")
    return make_run(config, method, augmentation, augmentation_seeds(config, augmentation)[0] if seed is None else seed)


def runs(config: dict[str, Any]) -> list[Run]:
    """Every run the study compares, by method, then augmentation (standard first), then seed."""
    order = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    return [
        make_run(config, method, augmentation, seed)
        for method in sorted(config["methods"])
        for augmentation in order
        if method in augmentation_methods(config, augmentation)
        for seed in augmentation_seeds(config, augmentation)
    ]


def init_runs(config: dict[str, Any]) -> list[Run]:
    """Each method's initialisation for every seed of the study (augmentation :data:`INIT`): the untrained backbone
    that the method's runs with that seed start from."""
    return [make_run(config, method, INIT, seed) for method in sorted(config["methods"]) for seed in seeds(config)]


def evaluated_runs(config: dict[str, Any]) -> list[Run]:
    """Every encoder whose features are probed: the runs, then the initialisations."""
    return runs(config) + init_runs(config)


def conditioning_run(config: dict[str, Any], generator: str) -> Run | None:
    """The run a generator trained in the workflow is conditioned on (``conditioning: {method, augmentation,
    seed}``, seed default: the study's first), or ``None`` (an encoder file, or a generator with local weights)."""
    conditioning = config["generators"][generator].get("conditioning") or {}
    if "method" not in conditioning:
        return None
    seed = conditioning.get("seed", seeds(config)[0])
    return make_run(config, conditioning["method"], conditioning["augmentation"], seed)


def conditioning_runs(config: dict[str, Any]) -> list[Run]:
    """The distinct conditioning runs of the used generators (:func:`conditioning_run`), in generator order."""
    found = [conditioning_run(config, generator) for generator in used_generators(config)]
    return list(dict.fromkeys(run for run in found if run is not None))


def separate_conditioning_runs(config: dict[str, Any]) -> list[Run]:
    """The conditioning runs that no comparison includes (their seed is not one the augmentation is trained with):
    pretraining runs of their own."""
    compared = set(runs(config))
    return [run for run in conditioning_runs(config) if run not in compared]


def used_generators(config: dict[str, Any]) -> list[str]:
    """The generators some augmentation uses, sorted."""
    return sorted({a["generator"] for a in config["augmentations"].values() if a.get("generator") is not None})
