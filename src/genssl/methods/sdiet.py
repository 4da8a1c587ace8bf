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
and their rows are read from disk on the store's reader thread while the step computes; rows written after that
read was started (a batch overlapping the next one, at an epoch's end) are read again, so the result is the same
bytes as without the read-ahead. Updated rows go back to the host with an asynchronous copy that the store's
writer thread waits for, so a step does not wait for the device.
"""

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

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


def batch_cross_entropy(
    z: torch.Tensor, rows: torch.Tensor, temperature: float, label_smoothing: float
) -> torch.Tensor:
    """CE of ``logits = z @ rows^T / tau`` (local B x global B) against this process's rows of the global batch."""
    all_rows = gather_with_grad(rows)
    targets = torch.arange(z.shape[0], device=z.device) + rank() * z.shape[0]
    return diet_loss(z @ all_rows.T / temperature, targets, label_smoothing)


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
        #: Reads started ahead: (rows, their future, the rows written since it started), oldest first.
        self._ahead: list[tuple[np.ndarray, Future, list[np.ndarray]]] = []

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
        weight, exp_avg, exp_avg_sq, last = self._read(rows)
        state = RowState(*(torch.from_numpy(a) for a in (weight, exp_avg, exp_avg_sq)))
        return self.row_adamw.catch_up(state, last, self.step)

    def _read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The rows from a read started ahead (re-reading those written since it started), else read now."""
        assert self.store is not None
        ahead = next((entry for entry in self._ahead if np.array_equal(entry[0], rows)), None)
        self._ahead = [entry for entry in self._ahead if entry is not ahead]
        if ahead is None:
            return self.store.read(rows)
        arrays = ahead[1].result()
        written = np.isin(rows, np.concatenate(ahead[2])) if ahead[2] else np.zeros(len(rows), bool)
        if written.any():
            for array, again in zip(arrays, self.store.read(rows[written]), strict=True):
                array[written] = again
        return arrays

    def prefetch_external(self, indices: torch.Tensor) -> None:
        """Start reading the rows of the next batch (one process only: in DDP other processes write rows)."""
        if self.store is None or (is_distributed() and world_size() > 1):
            return
        rows = indices.numpy().astype(np.int64)
        self._ahead.append((rows, self.store.read_ahead(rows), []))

    def forward(self, views: list[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
        rows = indices.cpu().numpy().astype(np.int64)  # no copy for host indices (the trainer passes those)
        state = self._load_rows(rows)
        device = views[0].device
        state = RowState(*(t.to(device, non_blocking=True) for t in state))
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
        for _, _, written in self._ahead:
            written.append(rows)
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
        for _, future, _ in self._ahead:
            future.result()
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
