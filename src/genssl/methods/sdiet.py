"""S-DIET: memory-efficient DIET with batch cross-entropy, a head on disk and the multistep AdamW update.

Per step, for the batch's training-split positions ``i_1 .. i_B`` (distinct):

1. read rows ``H[i_b]`` and their AdamW moments from the head store (:mod:`genssl.methods.head_store`) and apply
   the zero-gradient AdamW steps each row missed since its last update, in closed form
   (:class:`genssl.optim.multistep_adamw.RowAdamW`);
2. ``z_b = g(f(x_b))`` (``g`` an optional projection head), ``z_b <- z_b / ||z_b||`` (feature normalisation), and
   the batch cross-entropy over the batch's rows only, with temperature ``tau`` and label smoothing ``alpha``::

       logits_{ab} = z_a . H[i_b] / tau,      l = CE(logits, targets 0 .. B-1)

   (rows outside the batch get exactly zero gradient, which makes the closed-form catch-up exact);
3. after the optimiser step of the backbone, the same AdamW step for the batch's rows, written back by the
   store's background thread with ``last_step = t``.

At the end of training every row is caught up to the last step, so the saved head equals the head of AdamW
applied to the whole N x m head at every step. With several processes, logits are over the rows of the global
batch (gathered), so 2 processes x B/2 train like 1 x B.

Overlap (one process): the trainer names the next batch's positions before a step (:meth:`SDIET.prefetch_external`),
and on the store's reader thread, while the step computes, their rows are read from disk and caught up to the step
before theirs (and, for a CUDA run, put in pinned memory, so that their copy to the device neither waits for the
device nor blocks the host). Rows written after that read was started (a batch overlapping the next one, at an
epoch's end) are read again and the batch is caught up once more on the main thread, so the result is the same
bytes as without the read-ahead. Updated rows go back to the host with an asynchronous copy that the store's
writer thread waits for, so a step does not wait for the device.
"""

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genssl.distributed import gather_with_grad, is_distributed, rank, world_size
from genssl.errors import ConfigError, GensslError
from genssl.methods.base import Method, RunContext
from genssl.methods.diet import diet_loss
from genssl.methods.head_store import CHUNK_ROWS, HeadStore, copy_head, create_head
from genssl.methods.heads import mlp
from genssl.optim.multistep_adamw import RowAdamW, RowState
from genssl.progress import progress

#: The head's directory in the run's output directory (and in its checkpoints).
HEAD_DIR = "head"

#: A batch's rows as read from the store: ``(H, M, V, last_step)``.
Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _ReadAhead(NamedTuple):
    """A read of the next batch's rows started on the reader thread, and the rows written since it started."""

    rows: np.ndarray
    #: Holds ``(the rows as read, the rows caught up to step target, target)``.
    future: Future
    written: list[np.ndarray]


def batch_cross_entropy(
    z: torch.Tensor, rows: torch.Tensor, temperature: float, label_smoothing: float
) -> torch.Tensor:
    """CE of ``logits = z @ rows^T / tau`` (local B x global B) against this process's rows of the global batch."""
    all_rows = gather_with_grad(rows)
    targets = torch.arange(z.shape[0], device=z.device) + rank() * z.shape[0]
    return diet_loss(z @ all_rows.T / temperature, targets, label_smoothing)


def _to_device(state: RowState, device: torch.device) -> RowState:
    """The rows on ``device``. To CUDA from pinned memory (pinned here if they are not yet), so the copy is
    asynchronous: a copy from pageable memory would first wait for everything queued on the device."""
    if device.type != "cuda":
        return state
    pinned = (t if t.is_pinned() else t.pin_memory() for t in state)
    return RowState(*(t.to(device, non_blocking=True) for t in pinned))


def _to_host(state: RowState) -> tuple[list[torch.Tensor], Callable[[], None] | None]:
    """The state's tensors on the host: CPU tensors as they are; CUDA tensors copied asynchronously into pinned
    memory, with the function that waits for the copy (for the store's writer thread)."""
    tensors = [t.detach() for t in state]
    if tensors[0].device.type != "cuda":
        return tensors, None
    host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
    for target, source in zip(host, tensors, strict=True):
        target.copy_(source, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()
    return host, copied.synchronize


class SDIET(Method):
    """Backbone -> [projector] -> L2 normalisation -> batch cross-entropy against disk-backed head rows."""

    n_views = 1
    host_indices = True  # its head rows are looked up on the host

    def __init__(
        self, backbone: nn.Module, feature_dim: int, config: dict[str, Any], context: RunContext | None = None
    ) -> None:
        super().__init__(backbone, feature_dim, config, context)
        if context is None:
            raise ConfigError("methods.sdiet: S-DIET needs its run context (training-set size, schedule, output dir)")
        self.projector = (
            mlp(feature_dim, config["proj_hidden_dim"], config["proj_output_dim"]) if config["projector"] else None
        )
        self.head_dim = config["proj_output_dim"] if config["projector"] else feature_dim
        self.normalize = config["normalize"]
        self.temperature = config["temperature"]
        self.label_smoothing = config["label_smoothing"]
        lrs = np.array([context.lr(t) for t in range(1, context.total_steps + 1)])
        try:
            self.row_adamw = RowAdamW(lrs, tuple(config["betas"]), config["eps"], config["weight_decay"])
        except ValueError as err:
            raise ConfigError(f"methods.sdiet: {err}") from None
        self.head_path = context.out_dir / HEAD_DIR
        self.store: HeadStore | None = None
        self.step = 0
        self._batch: tuple[np.ndarray, RowState, torch.Tensor] | None = None
        #: Reads started ahead, oldest first.
        self._ahead: list[_ReadAhead] = []

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``z = g(f(x))``, L2-normalised when ``normalize``."""
        z = self.backbone(x)
        if self.projector is not None:
            z = self.projector(z)
        return F.normalize(z, dim=1) if self.normalize else z

    def _global_rows(self, rows: np.ndarray) -> np.ndarray:
        if not is_distributed() or world_size() == 1:
            return rows
        local = torch.as_tensor(rows)
        gathered = [torch.empty_like(local) for _ in range(world_size())]
        torch.distributed.all_gather(gathered, local)
        return torch.cat(gathered).numpy()

    def _load_rows(self, rows: np.ndarray) -> RowState:
        """The rows as of step ``t - 1`` (caught up); in DDP, after every process's queued writes of them."""
        assert self.store is not None, "open_external() was not called"
        global_rows = self._global_rows(rows)
        if len(np.unique(global_rows)) != len(global_rows):
            raise GensslError("sdiet: a batch holds the same training image twice; batch cross-entropy needs distinct")
        if is_distributed() and world_size() > 1:
            # Another process may have queued the last write of one of our rows: every process finishes its own
            # writes of this batch's rows, then all meet.
            self.store.wait_for(global_rows)
            torch.distributed.barrier()
        return self._caught_up(rows)

    def _catch_up(self, arrays: Rows, target: int) -> RowState:
        """The rows as read, caught up to step ``target``."""
        weight, exp_avg, exp_avg_sq, last = arrays
        state = RowState(*(torch.from_numpy(a) for a in (weight, exp_avg, exp_avg_sq)))
        return self.row_adamw.catch_up(state, last, target)

    def _caught_up(self, rows: np.ndarray) -> RowState:
        """The rows caught up to ``self.step``: from a read started ahead when there is one (the rows written since
        it started read again, and then the whole batch caught up again), else read and caught up now."""
        assert self.store is not None
        ahead = next((entry for entry in self._ahead if np.array_equal(entry.rows, rows)), None)
        self._ahead = [entry for entry in self._ahead if entry is not ahead]
        if ahead is None:
            return self._catch_up(self.store.read(rows), self.step)
        arrays, state, target = ahead.future.result()
        written = np.isin(rows, np.concatenate(ahead.written)) if ahead.written else np.zeros(len(rows), bool)
        if written.any():
            for array, again in zip(arrays, self.store.read(rows[written]), strict=True):
                array[written] = again
            return self._catch_up(arrays, self.step)
        return state if target == self.step else self._catch_up(arrays, self.step)

    def _prepare_ahead(self, arrays: Rows, target: int, pin: bool) -> tuple[Rows, RowState, int]:
        """On the reader thread: the rows as read and caught up to ``target`` (pinned when ``pin``)."""
        state = self._catch_up(arrays, target)
        return arrays, RowState(*(t.pin_memory() for t in state)) if pin else state, target

    def prefetch_external(self, indices: torch.Tensor) -> None:
        """Start reading the rows of the next batch and catching them up to the step before theirs (one process
        only: in DDP other processes write rows)."""
        if self.store is None or (is_distributed() and world_size() > 1):
            return
        rows = indices.numpy().astype(np.int64)
        target = self.step + 1  # the next batch trains at step self.step + 2
        pin = any(p.is_cuda for p in self.parameters())
        prepare = lambda arrays: self._prepare_ahead(arrays, target, pin)  # noqa: E731
        self._ahead.append(_ReadAhead(rows, self.store.read_ahead(rows, prepare), []))

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        rows = indices.cpu().numpy().astype(np.int64)  # no copy for host indices (the trainer passes those)
        state = _to_device(self._load_rows(rows), views[0].device)
        head = state.weight.clone().requires_grad_(True)
        self._batch = (rows, state, head)
        return batch_cross_entropy(self.embed(views[0]), head, self.temperature, self.label_smoothing)

    def update_external(self, step: int, grad_scale: float, skipped: bool) -> None:
        """AdamW step ``step`` of the batch's rows (gradient unscaled and, with DDP, averaged), written back async.

        A step the loss scaler skipped leaves the rows as caught up to ``step - 1``: they take it later as a
        zero-gradient step."""
        assert self.store is not None and self._batch is not None
        rows, state, head = self._batch
        self._batch = None
        if skipped or head.grad is None:
            new, last = state, step - 1
        else:
            grad = head.grad.float() / (grad_scale * world_size())
            new, last = self.row_adamw.step(state, grad, step), step
        values, ready = _to_host(new)
        self.store.write(rows, *values, step=last, ready=ready)
        for ahead in self._ahead:
            ahead.written.append(rows)
        self.step = step

    def open_external(self, checkpoint: Path | None, step: int) -> None:
        """Fresh head files in ``out_dir/head`` (or a copy of the checkpoint's), opened; ``step`` steps done."""
        main = not is_distributed() or rank() == 0
        if main:
            if checkpoint is None:
                create_head(self.head_path, self.context.num_samples, self.head_dim, self.context.seed)
            else:
                copy_head(checkpoint / HEAD_DIR, self.head_path)
        if is_distributed():
            torch.distributed.barrier()
        self.store = HeadStore(self.head_path)
        if (self.store.rows, self.store.dim) != (self.context.num_samples, self.head_dim):
            raise GensslError(
                f"{self.head_path}: head of {self.store.rows} x {self.store.dim}, the run needs "
                f"{self.context.num_samples} x {self.head_dim}; delete the checkpoint"
            )
        self.step = step

    def save_external(self, directory: Path | None) -> None:
        """Copy the head files, once every process's writes are done, into the checkpoint being written."""
        assert self.store is not None
        self.store.flush()
        if is_distributed():
            torch.distributed.barrier()
        if directory is not None:
            copy_head(self.head_path, directory / HEAD_DIR)

    def close_external(self, completed: bool) -> None:
        """On completion, catch every row up to the last step (chunk by chunk) and record it in head.json."""
        if self.store is None:
            return
        for ahead in self._ahead:
            ahead.future.result()
        self._ahead = []
        if completed:
            self.store.flush()
            if is_distributed():
                torch.distributed.barrier()  # every process's writes are in the files
            if not is_distributed() or rank() == 0:
                final = self.row_adamw.total_steps
                starts = range(0, self.store.rows, CHUNK_ROWS)
                for start in progress(starts, total=len(starts), desc="sdiet head catch-up", unit="chunk"):
                    weight, exp_avg, exp_avg_sq, last = self.store.read_range(start, start + CHUNK_ROWS)
                    state = RowState(*(torch.from_numpy(a) for a in (weight, exp_avg, exp_avg_sq)))
                    caught = self.row_adamw.catch_up(state, last, final)
                    self.store.write_range(start, *(t.numpy() for t in caught), step=final)
                self.store.set_step(final)
        self.store.close()
        self.store = None
