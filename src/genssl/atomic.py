"""Write an artifact directory or file completely or not at all.

An artifact is written into a temporary sibling of its final path and renamed into place only when the
writer finished without error; on error the temporary directory is removed. A crash therefore never
leaves something at the final path that looks finished. Artifacts that one command writes one after another and
that stand or fall together (an encoder's features and its probe results, ``genssl evaluate``) are all removed when
the command fails between them (:func:`all_or_none`). Its files get the mode the process's umask gives new
files (``0o666 & ~umask``), whatever the writer used (safetensors writes 0600), so that group members on a shared
file system can read them when the umask lets them.
"""

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from genssl.errors import GensslError


def check_writable(final: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an artifact path that cannot be written: the nearest existing directory above it
    (where its missing parents would be created) must let this process create a file. Nothing is left behind."""
    parent = Path(final).absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        probe = parent / f".genssl-write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise GensslError(
            f"{final}: cannot write it ({err.strerror}: {parent}); fix the directory's permissions or write "
            "elsewhere (--out)"
        ) from None


def umask() -> int:
    """The process's file-mode creation mask."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _with_umask_modes(path: Path) -> None:
    """Give ``path`` (a file, or every file below a directory) the mode ``0o666 & ~umask``."""
    mode = 0o666 & ~umask()
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    for file in files:
        os.chmod(file, mode)


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
    _with_umask_modes(tmp)
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
    _with_umask_modes(tmp)
    os.replace(tmp, final)


@contextlib.contextmanager
def all_or_none(finals: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """A block that writes the files ``finals`` one after another (each atomically, :func:`atomic_file`): when it
    raises, every one of them is removed, those it had finished and any older file at a path it had not reached yet,
    so that no subset is left behind that looks like a finished result."""
    paths = [Path(final) for final in finals]
    try:
        yield
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
