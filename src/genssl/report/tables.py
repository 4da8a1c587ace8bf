"""Markdown tables and the number formats of the report."""

from collections.abc import Sequence

from genssl.report.collect import mean_std


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A GitHub-flavoured Markdown table: the first ``text_columns`` columns left-aligned, the others (numbers)
    right-aligned."""
    align = [":---"] * text_columns + ["---:"] * (len(header) - text_columns)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines) + "\n"


def percent(values: list[float] | None, digits: int = 1) -> str:
    """Fractions as a percentage, ``mean`` or ``mean ± std`` over seeds; an em dash for no values."""
    if not values:
        return "—"
    mean, std = mean_std([100 * v for v in values])
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def number(values: list[float] | None, digits: int = 3) -> str:
    """``mean`` or ``mean ± std`` of plain numbers; an em dash for no values."""
    if not values:
        return "—"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def with_interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``value [low, high]``."""
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
