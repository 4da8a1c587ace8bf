"""S-DIET's head store: the N x m head ``H`` and its AdamW moments ``M``, ``V`` in memory-mapped files on disk.

A directory holds::

    weight.f32  exp_avg.f32  exp_avg_sq.f32    (N, m) float32, C order      H, M, V
    last_step.i64                              (N,) int64: the optimiser step each row was last updated at
    head.json                                  {"rows": N, "dim": m, "step": the step every row is caught up to or null}

Only the rows of a batch are ever read into memory (:meth:`HeadStore.read`); updated rows go back through a
background writer thread (:meth:`HeadStore.write`), one FIFO queue, so the step's compute does not wait for the
disk. Ordering: a read waits for every queued write that touches one of its rows, and :meth:`flush` (used
before a checkpoint copies the files, and at the end of training) waits for all of them. After each write the
writer drops the mapped pages from the process (``madvise(MADV_DONTNEED)``; the data stays in the page cache and
the file), so the process's resident memory holds a batch of rows, never the head.

Several processes (DDP) may open the same files and update disjoint rows; a process reading rows another one
wrote must first let that one finish (:meth:`HeadStore.wait_for`) and meet it at a barrier.
"""

import json
import math
import mmap
import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from genssl.errors import GensslError
from genssl.seeding import derive_seed

ARRAYS = {"weight": "weight.f32", "exp_avg": "exp_avg.f32", "exp_avg_sq": "exp_avg_sq.f32"}
LAST_STEP = "last_step.i64"
META = "head.json"
#: Rows initialised (and caught up at the end of training) per chunk.
CHUNK_ROWS = 8192


class _Mapped:
    """One file mapped read-write, viewed as a numpy array of ``shape``."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        self.path = path
        with open(path, "r+b") as f:
            expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if os.fstat(f.fileno()).st_size != expected:
                raise GensslError(f"{path}: expected {expected} bytes for an array of shape {shape}; delete the run")
            self.map = mmap.mmap(f.fileno(), expected)
        self.array = np.frombuffer(self.map, dtype=dtype).reshape(shape)

    def release_pages(self) -> None:
        self.map.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        del self.array
        self.map.close()


def _write_zeros(path: Path, nbytes: int) -> None:
    with open(path, "wb") as f:
        f.truncate(nbytes)


def create_head(directory: str | os.PathLike[str], rows: int, dim: int, seed: int) -> None:
    """Write a fresh head: ``H`` uniform in ``[-1/sqrt(m), 1/sqrt(m)]`` (``nn.Linear``'s initialisation), chunk ``c``
    of :data:`CHUNK_ROWS` rows drawn from a generator seeded with ``derive_seed(seed, "sdiet-head", c)``; zero
    moments, ``last_step`` 0. Memory use is one chunk, whatever ``rows``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS.values():
        _write_zeros(directory / name, rows * dim * 4)
    _write_zeros(directory / LAST_STEP, rows * 8)
    bound = 1.0 / math.sqrt(dim)
    with open(directory / ARRAYS["weight"], "r+b") as f:
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, rows - start)
            g = torch.Generator().manual_seed(derive_seed(seed, "sdiet-head", chunk))
            block = torch.empty(n, dim).uniform_(-bound, bound, generator=g)
            f.seek(start * dim * 4)
            f.write(block.numpy().tobytes())
    (directory / META).write_text(json.dumps({"rows": rows, "dim": dim, "step": None}) + "\n")


def copy_head(source: str | os.PathLike[str], destination: str | os.PathLike[str]) -> None:
    """Copy the head files of ``source`` into ``destination`` (created; existing files replaced)."""
    source, destination = Path(source), Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for name in [*ARRAYS.values(), LAST_STEP, META]:
        if not (source / name).is_file():
            raise GensslError(f"{source}: missing head file {name}")
        shutil.copyfile(source / name, destination / name)


class HeadStore:
    """The head files of ``directory``, mapped; rows read synchronously, written back by a background thread."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            meta = json.loads((self.directory / META).read_text())
        except (OSError, ValueError) as err:
            raise GensslError(f"{self.directory / META}: cannot read the S-DIET head ({err})") from None
        self.rows, self.dim = int(meta["rows"]), int(meta["dim"])
        self._maps = {
            key: _Mapped(self.directory / name, np.dtype(np.float32), (self.rows, self.dim))
            for key, name in ARRAYS.items()
        }
        self._maps["last_step"] = _Mapped(self.directory / LAST_STEP, np.dtype(np.int64), (self.rows,))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdiet-head-writer")
        self._pending: list[tuple[np.ndarray, Future]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "HeadStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for(self, rows: np.ndarray) -> None:
        """Block until no queued write touches ``rows`` (FIFO: waiting for the last such write suffices)."""
        with self._lock:
            self._pending = [(r, f) for r, f in self._pending if not f.done()]
            pending = list(self._pending)
        for written, future in reversed(pending):
            if np.intersect1d(written, rows, assume_unique=True).size:
                future.result()
                return

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of ``(H, M, V, last_step)`` at ``rows`` (distinct), after any queued write of those rows."""
        rows = np.asarray(rows, dtype=np.int64)
        self.wait_for(rows)
        return tuple(self._maps[key].array[rows] for key in ("weight", "exp_avg", "exp_avg_sq", "last_step"))

    def _store(self, rows: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for key, value in values.items():
            self._maps[key].array[rows] = value
        for mapped in self._maps.values():
            mapped.release_pages()

    def write(
        self, rows: np.ndarray, weight: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, step: int
    ) -> None:
        """Queue the write of updated rows (their ``last_step`` becomes ``step``); returns at once."""
        rows = np.asarray(rows, dtype=np.int64)
        values = {
            "weight": weight,
            "exp_avg": exp_avg,
            "exp_avg_sq": exp_avg_sq,
            "last_step": np.full(len(rows), step, dtype=np.int64),
        }
        future = self._writer.submit(self._store, rows, values)
        with self._lock:
            self._pending.append((rows, future))

    def write_now(self, start: int, weight: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, step: int) -> None:
        """Write the contiguous rows ``start .. start + len(weight)`` synchronously (after the queued writes)."""
        self.flush()
        rows = np.arange(start, start + len(weight))
        values = {"weight": weight, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        values["last_step"] = np.full(len(rows), step, dtype=np.int64)
        self._store(rows, values)

    def read_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of ``(H, M, V, last_step)`` for rows ``start .. stop - 1`` (after every queued write)."""
        self.flush()
        return tuple(
            np.array(self._maps[key].array[start:stop]) for key in ("weight", "exp_avg", "exp_avg_sq", "last_step")
        )

    def flush(self) -> None:
        """Wait for every queued write and push the mapped pages to the files (``msync``); re-raise a writer error."""
        with self._lock:
            pending, self._pending = self._pending, []
        for _, future in pending:
            future.result()
        for mapped in self._maps.values():
            mapped.map.flush()

    def set_step(self, step: int | None) -> None:
        """Record in head.json the step every row is caught up to (``None`` while training)."""
        (self.directory / META).write_text(json.dumps({"rows": self.rows, "dim": self.dim, "step": step}) + "\n")

    def close(self) -> None:
        """Flush and unmap (idempotent)."""
        if self._writer is None:
            return
        self.flush()
        self._writer.shutdown(wait=True)
        self._writer = None
        for mapped in self._maps.values():
            mapped.close()
