"""The report's "Claims" table: each claim of the papers, judged by its tested function (:mod:`genssl.report.claims`)
on the study's per-seed results.

Which runs answer which claim, on every downstream dataset (linear-probe top-1 of the test split):

- (a) generative augmentation helps every method: every *main* generative augmentation (one that every method
  trains with all of the study's seeds, :func:`main_augmentations`) against ``standard``, per method;
- (b) p = 0.5 is best: every p sweep (:func:`genssl.report.collect.sweeps`; ``standard`` is p = 0) with a p = 0.5
  point, per method that trains all of it;
- (c) generative + standard beats generative only: every mode sweep with both modes, per method that trains both;
- (d) the SSL encoder does not copy the conditioning encoder (once, on the similarity analysis' set): for every
  conditioning encoder that is a run of this study, the per-seed linear CKA and Procrustes distance of the runs of
  every generative augmentation of its generators run with at least two seeds against it, and the yardstick:
  the same measures between runs of the conditioning run's method and augmentation that differ only in seed (every
  pair of the compared seeds, and each of them against the conditioning encoder itself);
- (e) S-DIET matches contrastive accuracy at lower memory: ``sdiet`` against ``simclr``, both ``standard``, with the
  pretraining's peak memory of ``run.json``.

A claim the configuration has no runs for is listed as not tested, without a verdict.
"""

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from genssl.config import downstream_datasets
from genssl.report.claims import (
    CLAIM_COMBINED,
    CLAIM_HELPS,
    CLAIM_NO_COPY,
    CLAIM_P_HALF,
    CLAIM_SDIET,
    ClaimResult,
    SimilarityMeasure,
    combined_beats_generative_only,
    generative_helps_every_method,
    p_half_is_best,
    sdiet_matches_contrastive,
    ssl_encoder_does_not_copy,
)
from genssl.report.collect import MEMORY_KINDS, Pair, pair_value, per_seed, sweeps
from genssl.stages import conditioning_encoders
from genssl.study import CONDITIONING, augmentation_methods, augmentation_seeds, conditioning_run, runs, seeds

#: The contrastive method S-DIET is compared with (claim (e)).
CONTRASTIVE = "simclr"
#: The similarity measures of claim (d): (label, column of the analysis, whether a higher value is closer).
COPY_MEASURES = (("linear CKA", "cka", True), ("Procrustes distance", "opd", False))
#: The claims (a) to (e), in the table's order.
CLAIMS = (CLAIM_HELPS, CLAIM_P_HALF, CLAIM_COMBINED, CLAIM_NO_COPY, CLAIM_SDIET)


@dataclass(frozen=True)
class Judged:
    """A row of the claims table: the claim's result and where it was measured (a downstream dataset, or the
    similarity analysis' set)."""

    on: str
    result: ClaimResult


def main_augmentations(config: dict[str, Any]) -> list[str]:
    """The generative augmentations of the main comparison: trained by every method with every seed of the study."""
    methods, study = sorted(config["methods"]), seeds(config)
    return [
        name
        for name, augmentation in sorted(config["augmentations"].items())
        if augmentation.get("generator") is not None
        and augmentation_methods(config, name) == methods
        and augmentation_seeds(config, name) == study
    ]


def _trained(config: dict[str, Any], method: str, names: list[str]) -> bool:
    """Whether ``method`` trains every augmentation of ``names``."""
    return all(method in augmentation_methods(config, name) for name in names)


def accuracy_claims(config: dict[str, Any], rows: list[dict[str, Any]], downstream: str) -> list[Judged]:
    """Claims (a), (b), (c) and (e) on ``downstream`` (module docstring)."""
    top1 = per_seed(rows, "probe", "top1")
    metric = f"linear top-1 on {downstream}"

    def values(method: str, augmentation: str) -> dict[int, float]:
        return top1[(method, augmentation, downstream)]

    out = []
    methods = sorted(config["methods"])
    if "standard" in config["augmentations"]:
        for name in main_augmentations(config):
            standard = {m: values(m, "standard") for m in methods}
            generative = {m: values(m, name) for m in methods}
            out.append(Judged(downstream, generative_helps_every_method(standard, generative, metric)))
    for group in sweeps(config, "p"):
        by_name = {name: p for p, name in group}
        if 0.5 not in by_name.values():
            continue
        for method in methods:
            if _trained(config, method, list(by_name)):
                by_p = {p: values(method, name) for name, p in by_name.items()}
                out.append(Judged(f"{downstream}, {method}", p_half_is_best(by_p, metric)))
    for group in sweeps(config, "mode"):
        modes = {mode: name for mode, name in group}
        if not {"generative+standard", "generative-only"} <= set(modes):
            continue
        pair = [modes["generative+standard"], modes["generative-only"]]
        for method in methods:
            if _trained(config, method, pair):
                result = combined_beats_generative_only(values(method, pair[0]), values(method, pair[1]), metric)
                out.append(Judged(f"{downstream}, {method}", result))
    if {"sdiet", CONTRASTIVE} <= set(methods) and "standard" in config["augmentations"]:
        memory = per_seed(rows, "pretrain", "peak_memory_mib")
        kinds = sorted({r["other"] for r in rows if r["section"] == "pretrain" and r["metric"] == "peak_memory_mib"})
        label = f"peak memory (MiB; {'; '.join(MEMORY_KINDS.get(k, k) for k in kinds)})"
        result = sdiet_matches_contrastive(
            values("sdiet", "standard"),
            values(CONTRASTIVE, "standard"),
            memory[("sdiet", "standard", "")],
            memory[(CONTRASTIVE, "standard", "")],
            CONTRASTIVE,
            metric,
            label,
        )
        out.append(Judged(downstream, result))
    return out


def copy_measures(config: dict[str, Any], pairs: dict[Pair, dict[str, Any]]) -> dict[str, list[SimilarityMeasure]]:
    """``{conditioning encoder name: measures}`` of claim (d) (module docstring) for every conditioning encoder that
    is a run of this study and has generative runs of at least two seeds and a yardstick."""
    out = {}
    for generators in conditioning_encoders(config):
        conditioning = conditioning_run(config, generators[0])
        if conditioning is None:
            continue
        name = f"{CONDITIONING}/{'+'.join(generators)}"
        generative = [
            run
            for run in runs(config)
            if config["augmentations"][run.augmentation].get("generator") in generators
            and len(augmentation_seeds(config, run.augmentation)) >= 2
        ]
        twins = [
            run
            for run in runs(config)
            if (run.method, run.augmentation) == (conditioning.method, conditioning.augmentation)
            and run != conditioning
        ]
        if not generative or not twins:
            continue
        measures = []
        for label, column, higher in COPY_MEASURES:
            to_conditioning: dict[str, dict[int, float]] = {}
            for run in generative:
                to_conditioning.setdefault(f"{run.method}/{run.augmentation}", {})[run.seed] = pair_value(
                    pairs, run.name, name, column
                )
            yardstick = [pair_value(pairs, a.name, b.name, column) for a, b in combinations(twins, 2)]
            yardstick += [pair_value(pairs, twin.name, name, column) for twin in twins]
            measures.append(SimilarityMeasure(label, to_conditioning, yardstick, higher))
        out[name] = measures
    return out


def claims(config: dict[str, Any], rows: list[dict[str, Any]], pairs: dict[Pair, dict[str, Any]]) -> list[Judged]:
    """Every row of the claims table, in the order of the claims (a) to (e)."""
    judged = [j for d in downstream_datasets(config) for j in accuracy_claims(config, rows, d)]
    if pairs:
        judged += [Judged(name, ssl_encoder_does_not_copy(m)) for name, m in copy_measures(config, pairs).items()]
    return sorted(judged, key=lambda j: CLAIMS.index(j.result.claim))


def untested(judged: list[Judged]) -> list[str]:
    """The claims none of ``judged`` answers (the study has no runs for them)."""
    answered = {j.result.claim for j in judged}
    return [claim for claim in CLAIMS if claim not in answered]
