"""``genssl status``: is each tracked artifact on disk what the current configuration and inputs would produce?

The tracked artifacts (:func:`genssl.dvc_stages.tracked`, what DVC pushes and pulls) are checked in DAG order,
each against what it records of its making (:mod:`genssl.provenance`):

- a prepared store: its manifest's dataset settings and seed against ``datasets.{name}`` and ``seed``;
- a trained generator: its ``generator.json`` (settings, seed, the identity of the data store and of the
  conditioning encoder) against the configuration and the artifacts now on disk;
- a variant store: its fingerprint (data store, generator settings, seed, weights) against the same;
- a pretraining run: its ``run.json`` (configuration slice, seed, the identity of its data and variant stores).

An artifact is *current* when its record matches and everything it was made from is current, *stale* (with the
keys that differ) otherwise, and *missing* when it is not there. ``make pull`` touches only the current artifacts
for Snakemake and removes the stale ones, so Snakemake reruns them; ``make push`` refuses stale ones. The code
version an artifact was made with is shown, not compared: a pulled artifact of other code is reused.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genssl.dvc_stages import Tracked, tracked
from genssl.errors import GensslError
from genssl.generate.generation import weights_digest
from genssl.generate.registry import TRAINED
from genssl.generate.variant_store import fingerprint
from genssl.provenance import differences, file_identity, store_identity
from genssl.stages import ENCODER, GENERATOR_RECORD, MANIFEST, RUN_RECORD, config_slice, pretrain_keys
from genssl.study import Run
from genssl.train.generative import uses_variants


@dataclass(frozen=True)
class Status:
    """The state of one tracked artifact: ``current``, ``stale`` or ``missing``, and why."""

    artifact: Tracked
    state: str
    reason: str = ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise GensslError(f"{path}: cannot be read ({err})") from None


def _changed(recorded: Any, expected: Any, prefix: str) -> str:
    keys = differences(recorded, expected)
    return "" if not keys else "recorded other " + ", ".join(f"{prefix}{k}".rstrip(".") for k in keys)


class _Checker:
    """Statuses of the tracked artifacts of ``config`` below ``root``, memoised by directory."""

    def __init__(self, config: dict[str, Any], root: Path) -> None:
        self.config, self.root = config, root
        self.artifacts = {a.directory: a for a in tracked(config)}
        self.statuses: dict[str, Status] = {}

    def status(self, directory: str) -> Status:
        if directory not in self.statuses:
            artifact = self.artifacts[directory]
            path = self.root / directory
            if not (path / artifact.marker).is_file():
                self.statuses[directory] = Status(artifact, "missing")
            else:
                stale = next((f"its input {d} is not current" for d in artifact.inputs if not self.current(d)), "")
                reason = stale or getattr(self, f"_check_{artifact.kind}")(artifact, path)
                self.statuses[directory] = Status(artifact, "stale" if reason else "current", reason)
        return self.statuses[directory]

    def current(self, directory: str) -> bool:
        return directory not in self.artifacts or self.status(directory).state == "current"

    def _identity(self, directory: str) -> str:
        return store_identity(self.root / directory)

    def _check_data(self, artifact: Tracked, path: Path) -> str:
        provenance = _read_json(path / MANIFEST)["provenance"]
        recorded = {"seed": provenance.get("seed"), "datasets": {artifact.name: provenance.get("config")}}
        expected = {"seed": self.config["seed"], "datasets": {artifact.name: self.config["datasets"][artifact.name]}}
        return _changed(recorded, expected, "")

    def _check_generator(self, artifact: Tracked, path: Path) -> str:
        record = _read_json(path / GENERATOR_RECORD)
        data, encoder = artifact.inputs[0], artifact.inputs[1:]
        recorded = {
            "seed": record.get("seed"),
            "generators": {artifact.name: record.get("config")},
            "data": record.get("data_manifest_sha256"),
            "encoder": record.get("encoder_sha256"),
        }
        expected = {
            "seed": self.config["seed"],
            "generators": {artifact.name: self.config["generators"][artifact.name]},
            "data": self._identity(data),
            "encoder": file_identity(self.root / encoder[0] / ENCODER) if encoder else recorded["encoder"],
        }
        return _changed(recorded, expected, "")

    def _check_variants(self, artifact: Tracked, path: Path) -> str:
        recorded = _read_json(path / MANIFEST)["variants"]["fingerprint"]
        gen = self.config["generators"][artifact.name]
        weights = None
        if gen["backend"] in TRAINED:
            weights = weights_digest(self.root / artifact.inputs[1])
        expected = fingerprint(self.root / artifact.inputs[0], artifact.name, gen, self.config["seed"], weights)
        return _changed(recorded, expected, "fingerprint.")

    def _check_run(self, artifact: Tracked, path: Path) -> str:
        run: Run = artifact.run  # type: ignore[assignment]
        record = _read_json(path / RUN_RECORD)
        if "provenance" not in record:
            return "it records no identity of its inputs (made by an older genssl)"
        inputs = record["provenance"]["inputs"]
        recorded = {"seed": record["seed"], "config": record["config"], "inputs": inputs}
        reads_variants = uses_variants(self.config["augmentations"][run.augmentation])
        expected = {
            "seed": run.seed,
            "config": config_slice(self.config, pretrain_keys(self.config, run.method, run.augmentation)),
            "inputs": {
                "data": self._identity(artifact.inputs[0]),
                "variants": self._identity(artifact.inputs[1]) if reads_variants else None,
            },
        }
        return _changed(recorded, expected, "")


def statuses(config: dict[str, Any], root: str | os.PathLike[str] = ".") -> list[Status]:
    """The status of every tracked artifact of ``config`` below ``root``, in DAG order."""
    checker = _Checker(config, Path(root))
    return [checker.status(a.directory) for a in tracked(config)]


def remove(root: str | os.PathLike[str], status: Status) -> None:
    """Delete a stale artifact's directory (DVC's cache keeps the pulled copy), so that Snakemake remakes it."""
    shutil.rmtree(Path(root) / status.artifact.directory)
