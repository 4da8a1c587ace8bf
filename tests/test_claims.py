"""The verdict of every claim on constructed per-seed results: each verdict reachable, one seed never decides."""

import pytest

from genssl.report.claims import (
    CLAIM_HELPS,
    SimilarityMeasure,
    Verdict,
    combined_beats_generative_only,
    generative_helps_every_method,
    p_half_is_best,
    sdiet_matches_contrastive,
    ssl_encoder_does_not_copy,
)

BASE = {0: 0.80, 1: 0.84, 2: 0.78}


def shifted(by: tuple[float, ...], base: dict[int, float] = BASE) -> dict[int, float]:
    """``base`` plus one difference per seed."""
    return {seed: value + d for (seed, value), d in zip(sorted(base.items()), by, strict=True)}


UP = (0.05, 0.06, 0.055)  # interval above 0
DOWN = (-0.05, -0.06, -0.055)  # interval below 0
MIXED = (0.03, -0.02, 0.01)  # interval across 0


def test_generative_helps_every_method_needs_every_interval_above_zero():
    standard = {"simclr": BASE, "byol": BASE}
    supported = generative_helps_every_method(standard, {"simclr": shifted(UP), "byol": shifted(UP)})
    assert supported.verdict is Verdict.SUPPORTED and supported.claim == CLAIM_HELPS
    assert supported.evidence == (
        "generative − standard, linear top-1: byol +5.5 ± 0.5 [+4.3, +6.7] (95 % t, n = 3) points; "
        "simclr +5.5 ± 0.5 [+4.3, +6.7] (95 % t, n = 3) points"
    )
    crossing = generative_helps_every_method(standard, {"simclr": shifted(UP), "byol": shifted(MIXED)})
    assert crossing.verdict is Verdict.INCONCLUSIVE and crossing.verdict == "inconclusive at this scale"
    one_worse = generative_helps_every_method(standard, {"simclr": shifted(UP), "byol": shifted(DOWN)})
    assert one_worse.verdict is Verdict.CONTRADICTED


def test_one_seed_is_never_a_verdict():
    one = generative_helps_every_method({"simclr": {0: 0.80}}, {"simclr": {0: 0.95}})
    assert one.verdict is Verdict.INCONCLUSIVE and "n = 1: no interval" in one.evidence


def test_generative_helps_refuses_a_method_without_standard_run():
    with pytest.raises(ValueError, match="methods without a standard run to pair with: byol"):
        generative_helps_every_method({"simclr": BASE}, {"simclr": BASE, "byol": BASE})
    with pytest.raises(ValueError, match="no method"):
        generative_helps_every_method({"simclr": BASE}, {})


def test_p_half_is_best_compares_it_with_every_other_p():
    p0, p1 = BASE, shifted((-0.02, -0.03, -0.025))
    best = p_half_is_best({0.0: p0, 0.25: shifted((0.01, 0.0, 0.005)), 0.5: shifted(UP), 1.0: p1})
    assert best.verdict is Verdict.SUPPORTED
    assert best.evidence.startswith("p = 0.5 − p, linear top-1: p = 0 +5.5 ± 0.5 [+4.3, +6.7] (95 % t, n = 3) points")
    tied = p_half_is_best({0.0: p0, 0.25: shifted(UP), 0.5: shifted((0.05, 0.07, 0.05))})
    assert tied.verdict is Verdict.INCONCLUSIVE
    beaten = p_half_is_best({0.0: p0, 0.5: BASE, 0.75: shifted(UP)})
    assert beaten.verdict is Verdict.CONTRADICTED
    # An ablation run with one seed pairs with one seed of p = 0: no interval, no verdict.
    single = p_half_is_best({0.0: p0, 0.5: {0: 0.95}})
    assert single.verdict is Verdict.INCONCLUSIVE and "n = 1: no interval" in single.evidence
    with pytest.raises(ValueError, match=r"no run at p = 0\.5"):
        p_half_is_best({0.0: p0, 0.25: p0})
    with pytest.raises(ValueError, match="nothing to compare"):
        p_half_is_best({0.5: p0})


def test_generative_plus_standard_against_generative_only():
    assert combined_beats_generative_only(shifted(UP), BASE).verdict is Verdict.SUPPORTED
    assert combined_beats_generative_only(shifted(DOWN), BASE).verdict is Verdict.CONTRADICTED
    crossing = combined_beats_generative_only(shifted(MIXED), BASE)
    assert crossing.verdict is Verdict.INCONCLUSIVE
    assert crossing.evidence.startswith("generative + standard − generative only, linear top-1: +0.7 ± 2.5 [")


def _cka(to_conditioning: dict[int, float], yardstick: list[float]) -> SimilarityMeasure:
    return SimilarityMeasure("CKA", {"simclr/generative": to_conditioning}, yardstick, higher_is_closer=True)


def _opd(to_conditioning: dict[int, float], yardstick: list[float]) -> SimilarityMeasure:
    return SimilarityMeasure("OPD", {"simclr/generative": to_conditioning}, yardstick, higher_is_closer=False)


def test_copying_is_judged_against_the_seed_to_seed_yardstick():
    yardstick = [0.86, 0.88, 0.90]
    below = _cka({0: 0.80, 1: 0.82, 2: 0.81}, yardstick)  # [0.785, 0.835]: never closer than 0.90
    above = _cka({0: 0.97, 1: 0.98, 2: 0.975}, yardstick)  # [0.963, 0.987]: closer than any two seeds
    straddles = _cka({0: 0.85, 1: 0.93, 2: 0.89}, yardstick)
    supported = ssl_encoder_does_not_copy([below])
    assert supported.verdict is Verdict.SUPPORTED
    assert supported.evidence == (
        "CKA to the conditioning encoder: simclr/generative 0.810 ± 0.010 [0.785, 0.835] (95 % t, n = 3); "
        "seed-to-seed yardstick 0.860, 0.880, 0.900 (max 0.900)"
    )
    assert ssl_encoder_does_not_copy([above]).verdict is Verdict.CONTRADICTED
    assert ssl_encoder_does_not_copy([straddles]).verdict is Verdict.INCONCLUSIVE
    assert ssl_encoder_does_not_copy([_cka({0: 0.5}, yardstick)]).verdict is Verdict.INCONCLUSIVE


def test_a_distance_is_closer_when_smaller_and_every_measure_must_agree():
    far = _opd({0: 0.60, 1: 0.62, 2: 0.61}, [0.40, 0.45])
    near = _opd({0: 0.20, 1: 0.22, 2: 0.21}, [0.40, 0.45])
    assert ssl_encoder_does_not_copy([far]).verdict is Verdict.SUPPORTED
    assert ssl_encoder_does_not_copy([near]).verdict is Verdict.CONTRADICTED
    cka_supports = _cka({0: 0.80, 1: 0.82, 2: 0.81}, [0.9])
    assert ssl_encoder_does_not_copy([cka_supports, far]).verdict is Verdict.SUPPORTED
    assert ssl_encoder_does_not_copy([cka_supports, near]).verdict is Verdict.CONTRADICTED
    undecided = _opd({0: 0.30, 1: 0.60, 2: 0.45}, [0.40, 0.45])
    assert ssl_encoder_does_not_copy([cka_supports, undecided]).verdict is Verdict.INCONCLUSIVE
    assert "OPD to the conditioning encoder" in ssl_encoder_does_not_copy([far]).evidence
    assert "(min 0.400)" in ssl_encoder_does_not_copy([far]).evidence


def test_copying_needs_a_yardstick():
    with pytest.raises(ValueError, match="CKA: no seed-to-seed yardstick"):
        ssl_encoder_does_not_copy([_cka({0: 0.8, 1: 0.9}, [])])
    with pytest.raises(ValueError, match="no similarity measure"):
        ssl_encoder_does_not_copy([])


SIMCLR_MEMORY = {0: 1000.0, 1: 1010.0, 2: 1005.0}


def test_sdiet_matches_contrastive_accuracy_at_lower_memory():
    lower = {0: 600.0, 1: 610.0, 2: 602.0}
    slightly_worse = shifted((-0.005, 0.0, -0.003))  # within 2 points
    supported = sdiet_matches_contrastive(slightly_worse, BASE, lower, SIMCLR_MEMORY)
    assert supported.verdict is Verdict.SUPPORTED
    assert supported.evidence == (
        "S-DIET − simclr, linear top-1: -0.3 ± 0.3 [-0.9, +0.4] (95 % t, n = 3) points "
        "(non-inferiority margin 2 points); "
        "peak memory (MiB): -401 ± 2 [-405, -397] (95 % t, n = 3)"
    )
    much_worse = shifted((-0.10, -0.12, -0.11))
    assert sdiet_matches_contrastive(much_worse, BASE, lower, SIMCLR_MEMORY).verdict is Verdict.CONTRADICTED
    more_memory = {0: 1200.0, 1: 1205.0, 2: 1210.0}
    assert sdiet_matches_contrastive(slightly_worse, BASE, more_memory, SIMCLR_MEMORY).verdict is Verdict.CONTRADICTED
    same_memory = dict(SIMCLR_MEMORY)
    assert sdiet_matches_contrastive(slightly_worse, BASE, same_memory, SIMCLR_MEMORY).verdict is Verdict.CONTRADICTED
    # Within the margin or not cannot be told: the interval reaches past -2 points.
    unsure = shifted((-0.04, 0.01, -0.02))
    assert sdiet_matches_contrastive(unsure, BASE, lower, SIMCLR_MEMORY).verdict is Verdict.INCONCLUSIVE
    one_seed = sdiet_matches_contrastive({0: 0.8}, {0: 0.8}, {0: 600.0}, {0: 1000.0})
    assert one_seed.verdict is Verdict.INCONCLUSIVE
    wider = sdiet_matches_contrastive(unsure, BASE, lower, SIMCLR_MEMORY, margin=0.2)
    assert wider.verdict is Verdict.SUPPORTED and "(non-inferiority margin 20 points)" in wider.evidence
    with pytest.raises(ValueError, match="margin must be >= 0"):
        sdiet_matches_contrastive(BASE, BASE, lower, SIMCLR_MEMORY, margin=-0.01)
