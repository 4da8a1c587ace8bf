"""The claims table's inputs: which runs answer which claim (genssl.report.verdicts), on constructed per-seed
results of a small study."""

from genssl.report import sections
from genssl.report.claims import CLAIM_COMBINED, CLAIM_HELPS, CLAIM_NO_COPY, CLAIM_P_HALF, CLAIM_SDIET, Verdict
from genssl.report.collect import similarity_pairs
from genssl.report.verdicts import claims, main_augmentations, untested
from genssl.study import runs
from tests.helpers import small_study, write_similarity

#: Linear top-1 per seed of the standard runs, and what each augmentation adds (the same for every seed but a
#: little noise, so that the intervals are narrow but not empty).
STANDARD = {0: 0.80, 1: 0.84, 2: 0.78}
NOISE = {0: 0.004, 1: -0.003, 2: 0.001}
ADDED = {"standard": 0.0, "generative": 0.05, "p025": 0.02, "p100": -0.01, "only": 0.01, "crop": 0.03}


def study():
    config = small_study(seeds=[0, 1, 2], downstream=["digits"], methods={"simclr": {}, "byol": {}, "sdiet": {}})
    for name in ("p025", "p100", "only", "crop"):
        config["augmentations"][name]["seeds"] = [0]
    config["generators"]["ic"]["conditioning"] = {"method": "simclr", "augmentation": "standard", "seed": 1000}
    return config


def rows(config, sdiet_memory=300.0):
    out = []
    for run in runs(config):
        value = (
            STANDARD[run.seed] + ADDED[run.augmentation] + (NOISE[run.seed] if run.augmentation != "standard" else 0)
        )
        subject = dict(method=run.method, augmentation=run.augmentation, seed=run.seed, other="")
        out.append(dict(section="probe", downstream="digits", metric="top1", value=value, **subject))
        memory = sdiet_memory if run.method == "sdiet" else 500.0
        kind = dict(subject, other="cpu_rss")
        out.append(dict(section="pretrain", downstream="", metric="peak_memory_mib", value=memory + run.seed, **kind))
    return out


def test_the_main_comparison_is_what_every_method_trains_with_every_seed():
    config = study()
    assert main_augmentations(config) == ["generative"]
    config["augmentations"]["generative"]["seeds"] = [0, 1]
    assert main_augmentations(config) == []


def test_each_claim_is_judged_on_the_runs_that_answer_it(tmp_path):
    config = study()

    def value(a, b):  # generative runs no closer to the conditioning encoder than independent runs of simclr/standard
        if b == "conditioning/ic":
            return (0.6, 0.5) if "generative" in a else (0.7 + 0.01 * a.count("seed"), 0.4)
        return 0.65, 0.45

    write_similarity(tmp_path, config, value)
    judged = claims(config, rows(config), similarity_pairs(config, tmp_path))
    assert [(j.result.claim, j.on, j.result.verdict) for j in judged] == [
        (CLAIM_HELPS, "digits", Verdict.SUPPORTED),
        (CLAIM_P_HALF, "digits, simclr", Verdict.INCONCLUSIVE),  # the sweep ran one seed: no interval
        (CLAIM_COMBINED, "digits, simclr", Verdict.INCONCLUSIVE),
        (CLAIM_NO_COPY, "conditioning/ic", Verdict.SUPPORTED),
        (CLAIM_SDIET, "digits", Verdict.SUPPORTED),  # same accuracy, 200 MiB less
    ]
    helps = judged[0].result.evidence
    assert "byol +5.1 ± 0.4 [+4.2, +5.9] (95 % t, n = 3) points" in helps and "linear top-1 on digits" in helps
    assert "p = 0.25 +3.0 (n = 1: no interval) points" in judged[1].result.evidence
    copying = judged[3].result.evidence
    # three generative seeds against the conditioning encoder; the yardstick: 3 pairs among the standard seeds
    # (0.65) and each of them against the conditioning encoder (0.70, 0.71, 0.71)
    assert "linear CKA to the conditioning encoder: byol/generative 0.600 ± 0.000" in copying
    assert "seed-to-seed yardstick 0.650, 0.650, 0.650, 0.700, 0.710, 0.710 (max 0.710)" in copying
    assert "Procrustes distance" in copying and "sdiet/generative" in copying
    assert "the pretraining process's peak resident set on the CPU" in judged[4].result.evidence
    table = sections.claims_table(judged)
    assert table.startswith("## Claims\n\n| claim | on | evidence (95 % t intervals over seeds) | verdict |")
    assert f"| {CLAIM_HELPS} | digits | generative − standard" in table and "| **supported** |" in table
    assert "Not tested" not in table


def test_a_copying_encoder_and_a_memory_hungry_sdiet_contradict_their_claims(tmp_path):
    config = study()

    def value(a, b):  # the generative runs sit closer to the conditioning encoder than any retraining of it
        if b == "conditioning/ic":
            return (0.95 - 0.001 * a.count("seed"), 0.1) if "generative" in a else (0.7, 0.4)
        return 0.65, 0.45

    write_similarity(tmp_path, config, value)
    judged = {j.result.claim: j.result for j in claims(config, rows(config, 900.0), similarity_pairs(config, tmp_path))}
    assert judged[CLAIM_NO_COPY].verdict is Verdict.CONTRADICTED
    assert judged[CLAIM_SDIET].verdict is Verdict.CONTRADICTED


def test_claims_without_runs_are_listed_as_not_tested():
    config = small_study(
        seeds=[0, 1], downstream=["digits"], methods={"simclr": {}}, augmentations={"standard": {}}, generators={}
    )
    judged = claims(config, rows(config), {})
    assert judged == [] and untested(judged) == [CLAIM_HELPS, CLAIM_P_HALF, CLAIM_COMBINED, CLAIM_NO_COPY, CLAIM_SDIET]
    assert sections.claims_table(judged) == ""
