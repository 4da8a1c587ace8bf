"""What the report of a study holds: the names of its figures (the report rule declares them as outputs).

Kept free of plotting imports, since the Snakefile reads it when it builds the DAG.
"""

from typing import Any

from genssl.config import downstream_datasets
from genssl.report.collect import sweeps
from genssl.stages import similarity_encoders
from genssl.study import used_generators

#: The similarity heatmaps copied into the report.
HEATMAPS = ("cka.png", "cka_debiased.png", "opd.png")


def report_figures(config: dict[str, Any]) -> list[str]:
    """The file names under ``results/report/figures/`` of ``config``'s report: a preview grid per used generator,
    the loss curves, accuracy bars per downstream dataset, the p curve when there is a p sweep, and the similarity
    heatmaps when there are two encoders to compare."""
    names = [f"preview_{g}.png" for g in used_generators(config)] + ["loss_curves.png"]
    names += [f"accuracy_{d}.png" for d in downstream_datasets(config)]
    if sweeps(config, "p"):
        names.append("p_curve.png")
    if len(similarity_encoders(config)) >= 2:
        names += [f"similarity_{name}" for name in HEATMAPS]
    return names
