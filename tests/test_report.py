"""The report's building blocks: number formats, tables, the runtime table and the DVC metrics."""

import pytest

from genssl.config import validate_config
from genssl.report.stage import metrics, runtime_table
from genssl.report.tables import markdown_table, number, percent, with_interval


def test_values_over_seeds_are_mean_and_sample_standard_deviation():
    assert percent([0.8512]) == "85.1"
    assert percent([0.80, 0.82, 0.84]) == "82.0 ± 2.0"
    assert percent([]) == "—" and number(None) == "—"
    assert number([1.0, 2.0], 2) == "1.50 ± 0.71"
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
    rows = [
        {
            "section": "probe",
            "method": "simclr",
            "augmentation": "standard",
            "downstream": "digits",
            "metric": "top1",
            "value": v,
            "other": "",
        }
        for v in (0.8, 0.9)
    ]
    rows.append(
        {
            "section": "similarity",
            "method": "simclr",
            "augmentation": "standard",
            "downstream": "conditioning",
            "metric": "cka",
            "value": 0.5,
            "other": "conditioning/ic",
        }
    )
    out = metrics(config, rows)
    assert out["probe"]["digits"]["simclr/standard"]["top1"] == pytest.approx(0.85)
    assert out["similarity"]["simclr/standard vs conditioning/ic"] == {"cka": 0.5}
