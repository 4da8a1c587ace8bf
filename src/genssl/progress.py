"""Progress bars for long stages, readable both in a terminal and in a rule's log file."""

import sys
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

#: Seconds between updates when stderr is a file (a Snakemake log): a few hundred lines for a long stage.
LOG_INTERVAL = 30.0


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it") -> tqdm:
    """A tqdm bar on stderr to advance by hand (``bar.update(n)``; close it), with :func:`progress`'s settings."""
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        mininterval=0.1 if interactive else LOG_INTERVAL,
        ascii=not interactive,
        dynamic_ncols=interactive,
    )


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr showing count, rate (``unit``/s) and time left.

    In a terminal the bar refreshes several times a second; when stderr is redirected to a log file it is
    redrawn at most every ``LOG_INTERVAL`` seconds in ASCII, so logs stay small for ImageNet-size stages.
    """
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    with progress_bar(total, desc, unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)
