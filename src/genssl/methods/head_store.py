"""S-DIET's head store: the N x m head ``H`` and its AdamW moments ``M``, ``V`` in files on disk, never whole in RAM.

A directory holds raw C-order arrays (``np.memmap(path, dtype, mode="r", shape=...)`` opens each one)::

    weight.f32  exp_avg.f32  exp_avg_sq.f32    (N, m) float32      H, M, V
    last_step.i64                              (N,) int64: the optimiser step each row was last updated at
    head.json                                  {"rows": N, "dim": m, "step": the step every row is caught up to or null}

Only the rows of a batch are ever read into memory (:meth:`HeadStore.read`); updated rows go back through a
background writer thread (:meth:`HeadStore.write`), one FIFO queue, so the step's compute does not wait for the
disk. Ordering: a read waits for every queued write that touches one of its rows, and :meth:`flush` (used
before a checkpoint copies the files, and at the end of training) waits for all of them. :meth:`HeadStore.read_ahead`
runs a read on a reader thread (the next batch's rows while the current step computes); it sees every write
queued before it was called, not those queued after (their rows must be read again). A write may wait for its
values first (``ready``: e.g. the device-to-host copy of updated rows), in the writer thread.

Rows move with positioned I/O (``pread``/``pwrite`` of each row's bytes at ``row * m * itemsize``), not by indexing
a mapping of the files: touching a mapped page makes the kernel map its neighbours too (fault-around, up to
``fault_around_bytes``, 64 KiB by default), so scattered rows read through a mapping leave the process holding
up to 16 pages per row of each array, and a million-row head adds hundreds of MiB of resident file pages
(``benchmarks/sdiet_memory.py``). With ``pread`` the head's pages stay in the kernel's page cache, shared and
evictable, and the process holds exactly the batch's rows.

Several processes (DDP) may open the same files and update disjoint rows (``pwrite`` of disjoint byte ranges);
a process reading rows another one wrote must first let that one finish (:meth:`HeadStore.wait_for`) and meet
it at a barrier.
"""

import json
import math
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genssl.errors import GensslError
from genssl.seeding import derive_seed

ARRAYS = {"weight": "weight.f32", "exp_avg": "exp_avg.f32", "exp_avg_sq": "exp_avg_sq.f32"}
LAST_STEP = "last_step.i64"
META = "head.json"
#: Rows initialised (and caught up at the end of training) per chunk.
CHUNK_ROWS = 8192


class _RowFile:
    """One file of ``rows`` rows of ``width`` items of ``dtype``, read and written row by row at their offsets."""

    def __init__(self, path: Path, dtype: np.dtype, rows: int, width: int) -> None:
        self.path, self.dtype, self.width = path, dtype, width
        self.row_bytes = width * dtype.itemsize
        expected = rows * self.row_bytes
        self.fd = os.open(path, os.O_RDWR)
        if os.fstat(self.fd).st_size != expected:
            os.close(self.fd)
            raise GensslError(f"{path}: expected {expected} bytes for {rows} rows of {width} {dtype}; delete the run")

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows, in the order given (one ``pread`` per row)."""
        out = np.empty((len(rows), self.width), dtype=self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        for i, row in enumerate(rows.tolist()):
            self._exact(os.preadv(self.fd, [view[i * self.row_bytes : (i + 1) * self.row_bytes]], row * self.row_bytes))
        return out

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop - 1`` in one ``pread``."""
        out = np.empty((stop - start, self.width), dtype=self.dtype)
        self._exact(os.preadv(self.fd, [out.reshape(-1).view(np.uint8)], start * self.row_bytes), out.nbytes)
        return out

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """``values[i]`` to row ``rows[i]`` (one ``pwrite`` per row)."""
        data = memoryview(np.ascontiguousarray(values, dtype=self.dtype).reshape(-1).view(np.uint8))
        for i, row in enumerate(rows.tolist()):
            self._exact(os.pwrite(self.fd, data[i * self.row_bytes : (i + 1) * self.row_bytes], row * self.row_bytes))

    def write_range(self, start: int, values: np.ndarray) -> None:
        """``values`` to rows ``start .. start + len(values) - 1`` in one ``pwrite``."""
        data = np.ascontiguousarray(values, dtype=self.dtype).reshape(-1).view(np.uint8)
        self._exact(os.pwrite(self.fd, data, start * self.row_bytes), data.nbytes)

    def _exact(self, done: int, expected: int | None = None) -> None:
        if done != (self.row_bytes if expected is None else expected):
            raise GensslError(f"{self.path}: short read or write ({done} bytes); is the file truncated?")

    def close(self) -> None:
        os.close(self.fd)


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
    """The head files of ``directory``: rows read synchronously, written back by a background thread."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            meta = json.loads((self.directory / META).read_text())
        except (OSError, ValueError) as err:
            raise GensslError(f"{self.directory / META}: cannot read the S-DIET head ({err})") from None
        self.rows, self.dim = int(meta["rows"]), int(meta["dim"])
        self._files: dict[str, _RowFile] = {}
        try:
            for key, name in ARRAYS.items():
                self._files[key] = _RowFile(self.directory / name, np.dtype(np.float32), self.rows, self.dim)
            self._files["last_step"] = _RowFile(self.directory / LAST_STEP, np.dtype(np.int64), self.rows, 1)
        except BaseException:
            for opened in self._files.values():
                opened.close()
            raise
        self._writer: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sdiet-head-writer"
        )
        self._reader: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sdiet-head-reader"
        )
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
        """``(H, M, V, last_step)`` at ``rows`` (distinct), after any queued write of those rows."""
        rows = np.asarray(rows, dtype=np.int64)
        self.wait_for(rows)
        weight, exp_avg, exp_avg_sq = (self._files[key].read(rows) for key in ARRAYS)
        return weight, exp_avg, exp_avg_sq, self._files["last_step"].read(rows).reshape(-1)

    def read_ahead(self, rows: np.ndarray, then: Callable[[tuple[np.ndarray, ...]], Any]) -> Future:
        """:meth:`read` of ``rows`` on the reader thread, then ``then(result)`` on the same thread; the future holds
        what ``then`` returns. Writes queued after this call are not seen."""
        assert self._reader is not None, "the head store is closed"
        return self._reader.submit(lambda: then(self.read(rows)))

    def _store(self, rows: np.ndarray, values: dict[str, Any], ready: Callable[[], None] | None) -> None:
        if ready is not None:
            ready()
        for key, value in values.items():
            self._files[key].write(rows, np.asarray(value))

    def write(
        self,
        rows: np.ndarray,
        weight: np.ndarray | torch.Tensor,
        exp_avg: np.ndarray | torch.Tensor,
        exp_avg_sq: np.ndarray | torch.Tensor,
        step: int,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Queue the write of updated rows (their ``last_step`` becomes ``step``); returns at once. The values may be
        CPU tensors still being filled by an asynchronous copy: the writer thread calls ``ready()`` first."""
        assert self._writer is not None, "the head store is closed"
        rows = np.asarray(rows, dtype=np.int64)
        values = {
            "weight": weight,
            "exp_avg": exp_avg,
            "exp_avg_sq": exp_avg_sq,
            "last_step": np.full(len(rows), step, dtype=np.int64),
        }
        future = self._writer.submit(self._store, rows, values, ready)
        with self._lock:
            self._pending.append((rows, future))

    def write_range(
        self, start: int, weight: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, step: int
    ) -> None:
        """Write the contiguous rows ``start .. start + len(weight) - 1`` now; call after :meth:`flush`."""
        values = {"weight": weight, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        values["last_step"] = np.full(len(weight), step, dtype=np.int64)
        for key, value in values.items():
            self._files[key].write_range(start, value)

    def read_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(H, M, V, last_step)`` for rows ``start .. stop - 1`` (clipped to N); call after :meth:`flush`."""
        stop = min(stop, self.rows)
        weight, exp_avg, exp_avg_sq = (self._files[key].read_range(start, stop) for key in ARRAYS)
        return weight, exp_avg, exp_avg_sq, self._files["last_step"].read_range(start, stop).reshape(-1)

    def flush(self) -> None:
        """Wait for every queued write (then the files hold every row; re-raises a writer error)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for _, future in pending:
            future.result()

    def set_step(self, step: int | None) -> None:
        """Record in head.json the step every row is caught up to (``None`` while training)."""
        (self.directory / META).write_text(json.dumps({"rows": self.rows, "dim": self.dim, "step": step}) + "\n")

    def close(self) -> None:
        """Flush and close the files (idempotent)."""
        if self._writer is None:
            return
        try:
            self.flush()
        finally:
            self._writer.shutdown(wait=True)
            self._writer = None
            if self._reader is not None:
                self._reader.shutdown(wait=True)
                self._reader = None
            for file in self._files.values():
                file.close()
