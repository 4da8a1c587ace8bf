"""Errors a retry cannot fix, remembered between the attempts of one job.

Snakemake retries a failed job (the SLURM profile's ``retries``). That helps a job killed at its time limit or on a
failed node, but not one that stopped on a genssl error (a bad configuration, damaged data, a non-finite loss): the
error recurs. A command given ``--failure-record PATH`` writes such an error there (:func:`remember`); the next
attempt of the same job (``--attempt N`` with N > 1) finds it (:func:`previous`) and ends at once with the same
message instead of redoing the work. Attempt 1, the first run of a job in a Snakemake invocation, removes any old
record (:func:`forget`), so a rerun after a fix always runs.
"""

import json
import os
from pathlib import Path
from typing import Any


def forget(path: str | os.PathLike[str]) -> None:
    """Remove the record at ``path``, if any."""
    Path(path).unlink(missing_ok=True)


def remember(path: str | os.PathLike[str], message: str, status: int) -> None:
    """Record that the command ended with ``message`` and exit ``status``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"message": message, "status": status}) + "\n")


def previous(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record at ``path`` (``{"message", "status"}``), or None."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
