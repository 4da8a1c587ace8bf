"""The report's figures (matplotlib, object API, no global state): training-loss curves, accuracy bars with error
bars over seeds, and the p curve. PNG bytes are deterministic for given data (no timestamps or version text)."""

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

#: Colours of the augmentations, in order (matplotlib's tab10).
COLOURS = [f"C{i}" for i in range(10)]


def _save(figure: Figure, path: str | os.PathLike[str]) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})


def loss_curves(path: str | os.PathLike[str], curves: dict[str, dict[str, list[list[float]]]], title: str) -> None:
    """``curves[method][augmentation]`` holds one loss-per-epoch list per seed: one panel per method, one line per
    augmentation (the mean over seeds, shaded between the lowest and highest seed)."""
    methods = sorted(curves)
    columns = min(4, len(methods))
    rows = -(-len(methods) // columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    augmentations = sorted(
        {a for per_method in curves.values() for a in per_method}, key=lambda a: (a != "standard", a)
    )
    for ax, method in zip(axes, methods, strict=False):
        for augmentation, per_seed in sorted(curves[method].items(), key=lambda item: augmentations.index(item[0])):
            values = np.array(per_seed)
            epochs = np.arange(1, values.shape[1] + 1)
            colour = COLOURS[augmentations.index(augmentation) % len(COLOURS)]
            ax.plot(epochs, values.mean(0), label=augmentation, color=colour, linewidth=1.2, marker="o", markersize=2)
            if len(values) > 1:
                ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.2)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in axes[len(methods) :]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=10)
    _save(figure, path)


def accuracy_bars(
    path: str | os.PathLike[str],
    methods: Sequence[str],
    augmentations: Sequence[str],
    values: dict[tuple[str, str], list[float]],
    title: str,
    ylabel: str,
) -> None:
    """Grouped bars: one group per method, one bar per augmentation, the height the mean over seeds of
    ``values[(method, augmentation)]`` and the error bar its standard deviation (none for one seed)."""
    figure = Figure(figsize=(max(5.0, 0.45 * len(methods) * len(augmentations) + 2), 3.4))
    ax = figure.subplots()
    width = 0.8 / len(augmentations)
    for i, augmentation in enumerate(augmentations):
        xs, means, errors = [], [], []
        for j, method in enumerate(methods):
            seeds = values.get((method, augmentation))
            if seeds:
                xs.append(j + (i - (len(augmentations) - 1) / 2) * width)
                means.append(np.mean(seeds))
                errors.append(np.std(seeds, ddof=1) if len(seeds) > 1 else 0.0)
        ax.bar(xs, means, width, yerr=errors, capsize=2, label=augmentation, color=COLOURS[i % len(COLOURS)])
    ax.set_xticks(range(len(methods)), methods, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_ylim(0, 100)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, ncols=min(4, len(augmentations)))
    ax.set_title(title, fontsize=10)
    _save(figure, path)


def p_curve(
    path: str | os.PathLike[str], lines: dict[str, list[tuple[float, list[float]]]], title: str, ylabel: str
) -> None:
    """One line per label of ``lines``: top-1 (mean over seeds, error bar the standard deviation) against p."""
    figure = Figure(figsize=(4.8, 3.4))
    ax = figure.subplots()
    for i, (label, points) in enumerate(sorted(lines.items())):
        ps = [p for p, _ in points]
        means = [np.mean(v) for _, v in points]
        errors = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for _, v in points]
        ax.errorbar(ps, means, yerr=errors, marker="o", capsize=3, label=label, color=COLOURS[i % len(COLOURS)])
    ax.set_xlabel("p (probability that a view uses a generated variant)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    _save(figure, path)
