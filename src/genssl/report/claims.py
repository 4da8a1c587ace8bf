"""A verdict for each claim of the papers, from per-seed results (the report's "Claims" table).

Every function takes plain per-seed values (``{seed: value}``; accuracies as fractions) and returns a
:class:`ClaimResult`: the claim, the evidence (the numbers with their 95 % t intervals over seeds, from
:mod:`genssl.report.statistics`) and a :class:`Verdict`. A verdict needs intervals: a comparison run with one
seed has none, and a claim resting on it is inconclusive.

The rules, in terms of the 95 % t interval [lo, hi] of a paired difference:

- *generative augmentation helps every method* (:func:`generative_helps_every_method`): d_m = generative −
  standard per seed for every method m. Supported if lo > 0 for every m; contradicted if hi < 0 for some m;
  otherwise inconclusive.
- *p = 0.5 is best* (:func:`p_half_is_best`): d_p = acc(p = 0.5) − acc(p) per seed for every other p of the
  sweep. Supported if lo > 0 for every p (0.5 beats each other p); contradicted if hi < 0 for some p (some other
  p beats 0.5); otherwise inconclusive.
- *generative + standard beats generative only* (:func:`combined_beats_generative_only`): d = acc(generative +
  standard) − acc(generative only). Supported if lo > 0, contradicted if hi < 0, otherwise inconclusive.
- *the SSL encoder does not copy the conditioning encoder* (:func:`ssl_encoder_does_not_copy`): rule in the
  function's docstring.
- *S-DIET matches contrastive accuracy at lower memory* (:func:`sdiet_matches_contrastive`): rule in the
  function's docstring.

Multiplicity: "helps every method" and "p = 0.5 is best" read several intervals at once. *Supported* needs every
interval to clear 0, which is no easier than one comparison; *contradicted* needs one interval to fall below 0,
which with m intervals happens by chance with probability up to 1 − 0.975^m (16 % for the seven methods) when
nothing differs. The evidence lists every interval so that a reader can weigh this.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from genssl.report.statistics import Estimate, Interval, estimate, paired_difference

#: Per-seed values of one run: ``{seed: value}``.
PerSeed = Mapping[int, float]

#: The largest loss of accuracy (a fraction: 0.02 is 2 points) at which S-DIET still "matches" the contrastive
#: method.
SDIET_MARGIN = 0.02

CLAIM_HELPS = "Generative augmentation helps every method"
CLAIM_P_HALF = "p = 0.5 is the best probability of a generated view"
CLAIM_COMBINED = "Generative + standard augmentations beat generative only"
CLAIM_NO_COPY = "The SSL encoder does not copy the conditioning encoder"
CLAIM_SDIET = "S-DIET matches contrastive accuracy at lower memory"


class Verdict(StrEnum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive at this scale"


@dataclass(frozen=True)
class ClaimResult:
    """One row of the claims table."""

    claim: str
    evidence: str
    verdict: Verdict


def _points(value: Estimate) -> str:
    """An estimate of accuracy differences in percentage points."""
    return value.describe(scale=100, digits=1, signed=True) + " points"


def _all_above_zero(estimates: Sequence[Estimate]) -> Verdict:
    """Supported if every interval lies above 0, contradicted if one lies below 0, otherwise inconclusive."""
    intervals = [e.interval for e in estimates]
    if any(i is not None and i.below(0.0) for i in intervals):
        return Verdict.CONTRADICTED
    if all(i is not None and i.above(0.0) for i in intervals):
        return Verdict.SUPPORTED
    return Verdict.INCONCLUSIVE


def generative_helps_every_method(
    standard: Mapping[str, PerSeed], generative: Mapping[str, PerSeed], metric: str = "linear top-1"
) -> ClaimResult:
    """Claim (a): for every method m of ``generative`` (method -> per-seed ``metric``), the paired difference
    d_m = generative − standard over the seeds both ran. Supported if every 95 % interval of d_m lies above 0,
    contradicted if one lies below 0, otherwise inconclusive (an interval that contains 0, or a method run with
    one seed)."""
    if not generative:
        raise ValueError("no method with a generative run to judge")
    missing = sorted(set(generative) - set(standard))
    if missing:
        raise ValueError(f"methods without a standard run to pair with: {', '.join(missing)}")
    differences = {m: paired_difference(generative[m], standard[m]) for m in sorted(generative)}
    evidence = f"generative − standard, {metric}: " + "; ".join(f"{m} {_points(d)}" for m, d in differences.items())
    return ClaimResult(CLAIM_HELPS, evidence, _all_above_zero(list(differences.values())))


def p_half_is_best(by_p: Mapping[float, PerSeed], metric: str = "linear top-1", best: float = 0.5) -> ClaimResult:
    """Claim (b): ``by_p`` maps each p of the sweep (p = 0 is the standard run) to its per-seed ``metric``. For every
    p other than ``best`` the paired difference d_p = acc(best) − acc(p). Supported if every 95 % interval of d_p
    lies above 0 (``best`` beats each other p), contradicted if one lies below 0 (some other p beats it),
    otherwise inconclusive."""
    if best not in by_p:
        raise ValueError(f"the p sweep has no run at p = {best:g} (it has p = {', '.join(f'{p:g}' for p in by_p)})")
    others = sorted(p for p in by_p if p != best)
    if not others:
        raise ValueError(f"the p sweep has only p = {best:g}: nothing to compare it with")
    differences = {p: paired_difference(by_p[best], by_p[p]) for p in others}
    evidence = f"p = {best:g} − p, {metric}: " + "; ".join(f"p = {p:g} {_points(d)}" for p, d in differences.items())
    return ClaimResult(CLAIM_P_HALF, evidence, _all_above_zero(list(differences.values())))


def combined_beats_generative_only(
    combined: PerSeed, generative_only: PerSeed, metric: str = "linear top-1"
) -> ClaimResult:
    """Claim (c): the paired difference d = acc(generative + standard) − acc(generative only). Supported if its
    95 % interval lies above 0, contradicted if below 0, otherwise inconclusive."""
    difference = paired_difference(combined, generative_only)
    evidence = f"generative + standard − generative only, {metric}: {_points(difference)}"
    return ClaimResult(CLAIM_COMBINED, evidence, _all_above_zero([difference]))


@dataclass(frozen=True)
class SimilarityMeasure:
    """The values of one representation-similarity measure (CKA, OPD) for claim (d).

    ``to_conditioning`` maps each generative run (e.g. ``"simclr/generative"``) to its per-seed similarity with the
    conditioning encoder its generator was conditioned on; ``yardstick`` holds the similarity between two runs of
    the conditioning encoder's own method and augmentation that differ only in seed, one value per pair of seeds.
    ``higher_is_closer``: True for a similarity (CKA), False for a distance (OPD)."""

    name: str
    to_conditioning: Mapping[str, PerSeed]
    yardstick: Sequence[float]
    higher_is_closer: bool


def _copy_verdict(closeness: Estimate, reference: float, higher_is_closer: bool) -> Verdict:
    interval: Interval | None = closeness.interval
    if interval is None:
        return Verdict.INCONCLUSIVE
    if interval.above(reference) if higher_is_closer else interval.below(reference):
        return Verdict.CONTRADICTED
    if interval.high <= reference if higher_is_closer else interval.low >= reference:
        return Verdict.SUPPORTED
    return Verdict.INCONCLUSIVE


def ssl_encoder_does_not_copy(measures: Sequence[SimilarityMeasure]) -> ClaimResult:
    """Claim (d): a generative run's encoder is no closer to the conditioning encoder than an independent retraining
    of the conditioning encoder is to it.

    The yardstick is what "close" means at this scale: the similarity between two runs of the conditioning
    encoder's method that differ only in seed, and its reference value is the closest of those pairs (max CKA,
    min OPD). For every measure and every generative run, with the 95 % t interval [lo, hi] over seeds of the
    run's similarity to the conditioning encoder:

    - *copies* if the whole interval is closer than the reference (CKA: lo > max yardstick; OPD: hi < min);
    - *does not copy* if no part of it is closer (CKA: hi <= max yardstick; OPD: lo >= min);
    - undecided otherwise, or with one seed (no interval).

    The claim is contradicted if some run copies by some measure, supported if every run does not copy by every
    measure, otherwise inconclusive."""
    if not measures:
        raise ValueError("no similarity measure to judge the claim by")
    parts, verdicts = [], []
    for measure in measures:
        if not measure.yardstick:
            raise ValueError(f"{measure.name}: no seed-to-seed yardstick (the conditioning method needs two seeds)")
        if not measure.to_conditioning:
            raise ValueError(f"{measure.name}: no generative run compared with the conditioning encoder")
        reference = max(measure.yardstick) if measure.higher_is_closer else min(measure.yardstick)
        yardstick = ", ".join(f"{v:.3f}" for v in sorted(measure.yardstick))
        runs = []
        for run in sorted(measure.to_conditioning):
            closeness = estimate(measure.to_conditioning[run])
            verdicts.append(_copy_verdict(closeness, reference, measure.higher_is_closer))
            runs.append(f"{run} {closeness.describe(digits=3)}")
        closest = "max" if measure.higher_is_closer else "min"
        parts.append(
            f"{measure.name} to the conditioning encoder: {'; '.join(runs)}; "
            f"seed-to-seed yardstick {yardstick} ({closest} {reference:.3f})"
        )
    if Verdict.CONTRADICTED in verdicts:
        verdict = Verdict.CONTRADICTED
    elif all(v is Verdict.SUPPORTED for v in verdicts):
        verdict = Verdict.SUPPORTED
    else:
        verdict = Verdict.INCONCLUSIVE
    return ClaimResult(CLAIM_NO_COPY, ". ".join(parts), verdict)


def sdiet_matches_contrastive(
    sdiet_accuracy: PerSeed,
    contrastive_accuracy: PerSeed,
    sdiet_memory: PerSeed,
    contrastive_memory: PerSeed,
    contrastive: str = "simclr",
    metric: str = "linear top-1",
    memory: str = "peak memory (MiB)",
    margin: float = SDIET_MARGIN,
) -> ClaimResult:
    """Claim (e): with the 95 % t intervals of the paired differences over seeds of accuracy, d_acc = S-DIET −
    contrastive, and of peak memory, d_mem = S-DIET − contrastive:

    - supported if S-DIET is not worse than the contrastive method by more than ``margin`` (lo(d_acc) > −margin:
      a non-inferiority test) and uses less memory (hi(d_mem) < 0);
    - contradicted if it is worse by more than the margin (hi(d_acc) < −margin) or does not use less memory
      (lo(d_mem) >= 0);
    - otherwise inconclusive.

    The two methods do not share their initialisation; pairing by seed stays valid (the d_i are still independent
    across seeds) without the variance reduction that shared randomness gives."""
    if margin < 0:
        raise ValueError(f"the accuracy margin must be >= 0, got {margin}")
    accuracy = paired_difference(sdiet_accuracy, contrastive_accuracy)
    usage = paired_difference(sdiet_memory, contrastive_memory)
    evidence = (
        f"S-DIET − {contrastive}, {metric}: {_points(accuracy)} (non-inferiority margin {100 * margin:g} points); "
        f"{memory}: {usage.describe(digits=0, signed=True)}"
    )
    acc, mem = accuracy.interval, usage.interval
    if (acc is not None and acc.below(-margin)) or (mem is not None and mem.low >= 0):
        verdict = Verdict.CONTRADICTED
    elif acc is not None and mem is not None and acc.above(-margin) and mem.below(0.0):
        verdict = Verdict.SUPPORTED
    else:
        verdict = Verdict.INCONCLUSIVE
    return ClaimResult(CLAIM_SDIET, evidence, verdict)
