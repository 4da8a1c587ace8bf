"""The report's building blocks: number formats, tables, each section of summary.md and the DVC metrics."""

import pytest

from genssl.config import validate_config
from genssl.report import sections
from genssl.report.sections import runtime_table
from genssl.report.stage import metrics
from genssl.report.tables import markdown_table, number, percent, with_interval
from tests.helpers import small_study, write_similarity


def test_values_over_seeds_are_mean_and_sample_standard_deviation():
    assert percent({0: 0.8512}) == "85.1"
    assert percent({0: 0.80, 1: 0.82, 2: 0.84}) == "82.0 ± 2.0"
    assert percent({}) == "—" and number(None) == "—"
    assert number({3: 1.0, 5: 2.0}, 2) == "1.50 ± 0.71"
    assert with_interval(0.5, 0.4, 0.61) == "0.500 [0.400, 0.610]"


def test_markdown_tables_align_numbers_right():
    table = markdown_table(["method", "top-1"], [["simclr", "85.1"], ["byol", "80.0"]])
    assert table.splitlines() == ["| method | top-1 |", "| :--- | ---: |", "| simclr | 85.1 |", "| byol | 80.0 |"]


def test_the_runtime_table_sums_snakemake_benchmark_files_per_rule(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for path, seconds, rss in (("pretrain/digits/a/standard.tsv", 10.5, 900), ("pretrain/digits/b/x.tsv", 4.0, 1200)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(header + f"{seconds}\t0:00:10\t{rss}\t0\t0\t0\t0\t0\t0\t1\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.tsv").write_text(header + "1.0\t0:00:01\tNA\t0\t0\t0\t0\t0\t0\t1\n")
    table = runtime_table(tmp_path)
    assert "| pretrain | 2 | 14.5 | 10.5 | 1200 |" in table
    assert "| report | 1 | 1.0 | 1.0 | — |" in table
    assert runtime_table(tmp_path / "none") == ""


def test_metrics_are_means_over_seeds_keyed_for_dvc():
    config = validate_config({"probe": {"knn_k": [20]}})
    rows = [_row("probe", "simclr", "standard", seed, "digits", "top1", v) for seed, v in enumerate((0.8, 0.9))]
    rows.append(_row("probe", "simclr", "init", 0, "digits", "top1", 0.7))
    rows += [
        _row("similarity", "simclr", "standard", seed, "conditioning", "cka", v, "conditioning/ic")
        for seed, v in enumerate((0.5, 0.6))
    ]
    out = metrics(config, rows)
    assert out["probe"]["digits"]["simclr/standard"]["top1"] == pytest.approx(0.85)
    assert out["probe"]["digits"]["simclr/init"]["top1"] == pytest.approx(0.7)
    assert out["similarity"]["simclr/standard vs conditioning/ic"] == {"cka": 0.5}  # the first seed's pair


def _row(section, method, augmentation, seed, downstream, metric, value, other=""):
    return dict(
        section=section,
        method=method,
        augmentation=augmentation,
        seed=seed,
        downstream=downstream,
        metric=metric,
        value=value,
        other=other,
    )


def _probe_rows(values):
    """``{(method, augmentation, downstream): [top1 of seed 0, 1, ...]}`` as rows, with kNN top-1 = top-1 - 0.1."""
    rows = []
    for (method, augmentation, downstream), per_seed in values.items():
        for seed, value in enumerate(per_seed):
            rows.append(_row("probe", method, augmentation, seed, downstream, "top1", value))
            rows.append(_row("probe", method, augmentation, seed, downstream, "knn20_top1", value - 0.1))
    return rows


def test_the_header_shows_each_methods_own_batch_accumulation_lr_and_steps(digits16, tmp_path):
    config = small_study()
    config["methods"]["byol"]["batch_size"] = 64
    config["methods"]["byol"]["accumulate_steps"] = 4
    (tmp_path / "results" / "data").mkdir(parents=True)
    (tmp_path / "results" / "data" / "digits").symlink_to(digits16)
    text = sections.header(config, tmp_path)
    assert "(1293 training images)" in text
    assert "| method | batch | accumulation | images / step | peak lr | optimiser | steps |" in text
    simclr, byol = config["methods"]["simclr"], config["methods"]["byol"]
    batch = config["pretrain"]["batch_size"]
    steps = 1293 // batch * config["pretrain"]["epochs"]
    lr = simclr["lr"] * batch / 256
    assert f"| simclr | {batch} | 1 | {batch} | {lr:.4g} | {simclr['optimizer']} | {steps} |" in text
    steps = 1293 // 256 * config["pretrain"]["epochs"]  # 64 x 4 images per optimiser step
    assert f"| byol | 64 | 4 | 256 | {byol['lr'] * 256 / 256:.4g} | {byol['optimizer']} | {steps} |" in text


def test_probe_tables_show_the_random_init_and_mean_and_sd_over_seeds_per_downstream_dataset():
    config = small_study(seeds=[0, 1])
    config["augmentations"]["crop"]["seeds"] = [1]
    rows = _probe_rows(
        {
            ("simclr", "init", "digits"): [0.70, 0.72],
            ("simclr", "standard", "digits"): [0.80, 0.82],
            ("byol", "generative", "shapes"): [0.5, 0.5],
        }
    )
    text = sections.probe_tables(config, rows, "top1", "Linear probe top-1 (%)")
    assert text.startswith(
        "## Linear probe top-1 (%)\n\n### digits\n\n| method | random init | standard | crop (seed 1) | generative |"
    )
    assert "| simclr | 71.0 ± 1.4 | 81.0 ± 1.4 | — |" in text
    assert "### shapes" in text and "| byol | — | — | — | 50.0 ± 0.0 |" in text


def test_the_delta_table_pairs_runs_by_seed_and_says_which_intervals_exclude_zero():
    config = small_study(seeds=[0, 1, 2], downstream=["digits"])
    config["augmentations"]["p025"]["seeds"] = [0]
    rows = _probe_rows(
        {
            ("simclr", "standard", "digits"): [0.80, 0.90, 0.85],
            ("simclr", "generative", "digits"): [0.83, 0.92, 0.875],
            ("simclr", "p025", "digits"): [0.70],
            ("byol", "standard", "digits"): [0.80, 0.90, 0.85],
            ("byol", "generative", "digits"): [0.83, 0.88, 0.86],
        }
    )
    text = sections.delta_table(config, rows)
    interval = "+2.5 ± 0.5 [+1.3, +3.7] (95 % t, n = 3)"
    assert f"| simclr | generative | digits | {interval} | {interval} |" in text
    assert "| simclr | p025 (seed 0) | digits | -10.0 (n = 1: no interval) |" in text
    assert "| byol | generative | digits | +0.7 ± 2.5 [" in text
    assert (
        f"Intervals that exclude 0: simclr generative digits linear ({interval}); simclr generative digits kNN" in text
    )
    assert "byol generative digits linear" not in text
    assert sections.delta_table(small_study(augmentations={"standard": {}}), rows) == ""


def test_the_learning_table_compares_each_method_with_its_initialisation_seed_by_seed():
    config = small_study(seeds=[0, 1, 2], downstream=["digits"])
    rows = _probe_rows(
        {
            ("simclr", "init", "digits"): [0.90, 0.92, 0.91],
            ("simclr", "standard", "digits"): [0.95, 0.96, 0.97],
            ("byol", "init", "digits"): [0.90, 0.92, 0.91],
            ("byol", "standard", "digits"): [0.88, 0.93, 0.89],
        }
    )
    text = sections.learning_table(config, rows)
    simclr = next(line for line in text.splitlines() if line.startswith("| simclr |"))
    assert simclr.startswith("| simclr | 91.0 ± 1.0 | 96.0 ± 1.0 | +5.0 ± 1.0 [+2.5, +7.5] (95 % t, n = 3) |")
    assert simclr.endswith("| yes |")
    byol = next(line for line in text.splitlines() if line.startswith("| byol |"))
    assert "| -1.0 ± 1.7 [-5.3, +3.3] (95 % t, n = 3) |" in byol and byol.endswith(
        "| **no** |"
    )  # below its initialisation on the mean


def test_the_p_sweep_table_starts_at_the_standard_run_and_labels_ablations_with_fewer_seeds():
    config = small_study(downstream=["digits"], seeds=[0, 1])
    config["augmentations"]["p025"]["seeds"] = [0]
    values = {("simclr", a, "digits"): [v] for a, v in [("standard", 0.8), ("p025", 0.81), ("generative", 0.82)]}
    text = sections.sweep_tables(config, _probe_rows(values), "p", "p sweep")
    assert "## p sweep: simclr, ic (linear top-1, %)" in text
    lines = [line for line in text.splitlines() if line.startswith("| 0")]
    assert lines[:3] == ["| 0.0 | standard | 80.0 |", "| 0.25 | p025 (seed 0) | 81.0 |", "| 0.5 | generative | 82.0 |"]
    assert "p = 0 is the standard run" in text
    modes = sections.sweep_tables(config, _probe_rows(values), "mode", "Mode ablation")
    assert [line.split(" | ")[0] for line in modes.splitlines() if line.startswith("| generative")] == [
        "| generative-only",
        "| generative+crop",
        "| generative+standard",
    ]


def test_the_sdiet_table_lists_sdiet_first_with_memory_and_time():
    config = small_study(methods={"simclr": {}, "sdiet": {}}, downstream=["digits"])
    rows = _probe_rows({("sdiet", "standard", "digits"): [0.7], ("simclr", "standard", "digits"): [0.8]})
    for method, memory in (("sdiet", 300.0), ("simclr", 500.0)):
        rows.append(_row("pretrain", method, "standard", 0, "", "peak_memory_mib", memory, "cpu_rss"))
        rows.append(_row("pretrain", method, "standard", 0, "", "seconds", 12.0))
    text = sections.sdiet_table(config, rows)
    body = [line for line in text.splitlines() if line.startswith("| s")]
    assert body == ["| sdiet | 70.0 | 300 | 12.0 |", "| simclr | 80.0 | 500 | 12.0 |"]
    assert "peak resident set" in text
    assert sections.sdiet_table(small_study(), rows) == ""


def _similarity_study():
    config = small_study(
        seeds=[0, 1],
        methods={"simclr": {}},
        augmentations={
            "standard": {},
            "generative": {"generator": "ic"},
            "p025": {"generator": "ic", "p": 0.25, "seeds": [0]},
        },
    )
    config["generators"]["ic"]["conditioning"] = {"method": "simclr", "augmentation": "standard", "seed": 1000}
    return config


def test_similarity_tables_judge_closeness_to_the_conditioning_encoder_over_seeds_against_the_yardstick(tmp_path):
    from genssl.report.collect import similarity_pairs

    config = _similarity_study()

    def value(a, b):
        if b == "conditioning/ic":
            return {"simclr/generative": (0.8, 0.3), "simclr/generative-seed1": (0.7, 0.4)}.get(a, (0.6, 0.5))
        return 0.5, 0.9

    write_similarity(tmp_path, config, value)
    text = sections.similarity_tables(config, tmp_path, similarity_pairs(config, tmp_path))
    assert text.startswith("## Representation similarity (digits test, n = 100)")
    assert "### Against the conditioning encoder conditioning/ic (intervals over seeds)" in text
    assert "the run simclr/standard-seed1000 (seed 1000), trained for the generators, in no comparison" in text
    assert "| simclr/generative | 0.750 ± 0.071 [0.115, 1.385] (95 % t, n = 2) | 0.350 ± 0.071 [" in text
    assert "| simclr/p025 (seed 0) | 0.600 (n = 1: no interval) | 0.500 (n = 1: no interval) |" in text
    assert "| simclr/standard (independent runs of the conditioning encoder's method: the yardstick) | 0.600 ±" in text
    assert "| simclr | standard | 1 | 0.500 [0.500, 0.500] | 0.900 [0.900, 0.900] |" in text
    assert "| simclr | generative | 0.500 ± 0.000 [0.500, 0.500] (95 % t, n = 2) |" in text
    bootstrap = text[text.index("bootstrap intervals") :]
    assert "they do not cover the variation between training runs" in bootstrap
    assert "| simclr/generative | conditioning/ic | 0.800 [0.750, 0.850] |" in bootstrap
    assert "seed1" not in bootstrap  # replicate pairs have no bootstrap interval
    assert sections.similarity_tables(config, tmp_path, {}) == ""


def test_the_provenance_table_shows_each_runs_code_and_inputs_and_warns_on_mixed_data():
    run = {"seed": 0, "code": "0.1.0+abc", "inputs": {"data": "d" * 64, "variants": None}}
    inputs = {"code": "0.1.0+abc", "runs": {"simclr/standard": run, "simclr/generative": {**run, "seed": 1}}}
    text = sections.provenance_table(inputs)
    assert "## Provenance (report by genssl 0.1.0+abc)" in text
    assert "| simclr/standard | 0 | 0.1.0+abc | dddddddddddd | — |" in text and "Warning" not in text
    inputs["runs"]["simclr/generative"]["inputs"] = {"data": "e" * 64, "variants": "f" * 64}
    text = sections.provenance_table(inputs)
    assert "| simclr/generative | 1 | 0.1.0+abc | eeeeeeeeeeee | ffffffffffff |" in text and "Warning" in text
