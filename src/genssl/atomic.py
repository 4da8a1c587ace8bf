"""Write an artifact directory or file completely or not at all.

An artifact is written into a temporary sibling of its final path and renamed into place only when the
writer finished without error; on error the temporary directory is removed. A crash therefore never
leaves something at the final path that looks finished.
"""

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` when the block exits cleanly.

    An existing directory at ``final`` (an older artifact, or the empty directory Snakemake creates for an
    output's parent) is replaced. The rename is atomic on one file system; the old directory is moved aside
    first and deleted after the new one is in place.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final`` to write; it replaces ``final`` when the block exits cleanly and is
    removed otherwise."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)
