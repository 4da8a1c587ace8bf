"""What a study configuration asks for: its pretraining runs and the generators they use (where each result lives
is the stage contract, :mod:`genssl.stages`).

A run is (method, augmentation, seed). ``seeds`` lists the pretraining seeds (default: ``[seed]``); every
augmentation is trained by the methods of its ``methods`` list (default: all configured methods) once per seed.
The run with the first seed lives at the contract's paths, ``.../{method}/{augmentation}/``; a replicate with
another seed s at ``.../{method}/{augmentation}-seed{s}/`` (augmentation names cannot hold a hyphen, so the two
never collide). Data splits, generated variants, probes and bootstrap intervals always use ``seed``; a replicate
changes only the pretraining's own random draws (initialisation, data order, views, variant choices).
"""

import re
from dataclasses import dataclass
from typing import Any

from genssl.errors import ConfigError

#: The directory-name suffix of a replicate run.
REPLICATE = re.compile(r"^(?P<augmentation>[a-z][a-z0-9_]*)(?:-seed(?P<seed>\d+))?$")
#: The prefix of a generator's conditioning encoder among the encoders of the similarity analysis.
CONDITIONING = "conditioning"


def seeds(config: dict[str, Any]) -> list[int]:
    """The pretraining seeds: ``seeds``, or ``[seed]``."""
    return list(config.get("seeds") or [config["seed"]])


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
    return Run(method, augmentation, seed, seed == seeds(config)[0])


def augmentation_methods(config: dict[str, Any], augmentation: str) -> list[str]:
    """The methods that train with ``augmentation``: its ``methods`` list, or every configured method."""
    listed = config["augmentations"][augmentation].get("methods")
    return sorted(config["methods"]) if listed is None else sorted(listed)


def study_run(config: dict[str, Any], method: str, augmentation: str, seed: int | None = None) -> Run:
    """The run ``(method, augmentation, seed)`` of the study (``seed`` default: the first of :func:`seeds`); a run
    the configuration does not ask for is refused, naming the key."""
    if method not in config["methods"]:
        known = ", ".join(sorted(config["methods"])) or "(none)"
        raise ConfigError(f"methods.{method}: not configured; configured methods: {known}")
    if augmentation not in config["augmentations"]:
        raise ConfigError(
            f"augmentations.{augmentation}: not configured; configured: {', '.join(sorted(config['augmentations']))}"
        )
    if method not in augmentation_methods(config, augmentation):
        raise ConfigError(f"augmentations.{augmentation}.methods: does not list {method}")
    all_seeds = seeds(config)
    seed = all_seeds[0] if seed is None else seed
    return Run(method, augmentation, seed, seed == all_seeds[0])


def runs(config: dict[str, Any]) -> list[Run]:
    """Every run, by method, then augmentation (standard first), then seed."""
    order = sorted(config["augmentations"], key=lambda a: (a != "standard", a))
    all_seeds = seeds(config)
    return [
        Run(method, augmentation, seed, seed == all_seeds[0])
        for method in sorted(config["methods"])
        for augmentation in order
        if method in augmentation_methods(config, augmentation)
        for seed in all_seeds
    ]


def used_generators(config: dict[str, Any]) -> list[str]:
    """The generators some augmentation uses, sorted."""
    return sorted({a["generator"] for a in config["augmentations"].values() if a.get("generator") is not None})
