"""Markdown tables and the number formats of the report."""

from collections.abc import Mapping, Sequence

from genssl.report.statistics import mean_sd


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A GitHub-flavoured Markdown table: the first ``text_columns`` columns left-aligned, the others (numbers)
    right-aligned."""
    align = [":---"] * text_columns + ["---:"] * (len(header) - text_columns)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines) + "\n"


def number(per_seed: Mapping[int, float] | None, digits: int = 3, scale: float = 1.0) -> str:
    """``mean`` (one seed) or ``mean ± sd`` (sample sd, :func:`~genssl.report.statistics.mean_sd`) of per-seed
    values ``{seed: value}`` times ``scale``; an em dash for no values."""
    if not per_seed:
        return "—"
    mean, sd = mean_sd([scale * v for v in per_seed.values()])
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def percent(per_seed: Mapping[int, float] | None, digits: int = 1) -> str:
    """Per-seed fractions as a percentage, ``mean`` or ``mean ± sd`` (:func:`number`)."""
    return number(per_seed, digits, scale=100.0)


def with_interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``value [low, high]``."""
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
