"""AdamW for rows that are updated only when they are in the batch: S-DIET's head ``H`` (one row per datum).

The rule is torch's ``AdamW`` applied to the whole head as one tensor at every optimiser step ``t = 1 .. T``,
rows outside the batch receiving a zero gradient. For a row ``theta`` with moments ``m``, ``v``, learning rate
``lr_t`` of step ``t``, weight decay ``lambda``, ``c_t = 1 - lr_t lambda``, and the bias corrections of the global
step ``bc1_t = 1 - beta1^t``, ``bc2_t = 1 - beta2^t``::

    theta <- c_t theta
    m <- beta1 m + (1 - beta1) g        v <- beta2 v + (1 - beta2) g^2
    theta <- theta - (lr_t / bc1_t) m / (sqrt(v) / sqrt(bc2_t) + eps)

A row last updated at step ``s`` and next in a batch at step ``t`` missed the ``k = t - 1 - s`` steps
``i = s + j`` (``j = 1 .. k``) in which its gradient was zero, so ``m_i = beta1^j m``, ``v_i = beta2^j v``.
With ``mu = beta1 / sqrt(beta2)`` these steps compose in closed form (the "multistep" update)::

    theta <- C theta - G r        m <- beta1^k m        v <- beta2^k v
    C = prod_{i=s+1}^{t-1} c_i
    G = sum_{j=1}^{k} w_{s+j} mu^j prod_{l=s+j+1}^{t-1} c_l,     w_i = sqrt(beta2) (lr_i / bc1_i) sqrt(bc2_i)
    r = m / (sqrt(beta2 v) + eps sqrt(bc2_{s+1}))                (r = 0 where v = 0: such a row has m = 0 too)

* **eps = 0**: exact for any per-step learning rates (warm-up and cosine included), since every missed step's
  update is then ``(lr_i / bc1_i) sqrt(bc2_i) mu^j m / sqrt(v)``.
* **eps > 0**: exact for the first missed step; step ``j`` is computed with the denominator
  ``beta2^{(j-1)/2} (sqrt(beta2 v) + eps sqrt(bc2_{s+1}))`` in place of the exact
  ``beta2^{j/2} sqrt(v) + eps sqrt(bc2_{s+j})``, i.e. eps is taken to shrink with ``sqrt(v)``. The approximate
  denominator is never larger, so each missed step's update overshoots by the relative amount
  ``delta_j = eps (sqrt(bc2_{s+j}) - beta2^{(j-1)/2} sqrt(bc2_{s+1})) / (beta2^{j/2} sqrt(v) + eps
  beta2^{(j-1)/2} sqrt(bc2_{s+1}))`` (elementwise), and the total displacement ``G r`` by at most the
  ``|update|``-weighted mean of the ``delta_j``: roughly ``eps (j - 1) (1 - beta2) / (2 sqrt(v))`` over the first
  few hundred ``j`` that carry the weight, i.e. below 1e-3 relative for eps = 1e-8 and ``sqrt(v) >= 1e-4``.

Terms with ``mu^j`` below ``1e-18`` are dropped (they are below double precision of the kept sum), so the cost
is ``O(min(k, J))`` per row with ``J = log(1e-18) / log(mu)`` (about 400 for the default betas); this needs
``beta1 < sqrt(beta2)``. ``C`` and the products inside ``G`` come from prefix sums of ``log c_i`` in float64.
"""

import math
from typing import NamedTuple

import numpy as np
import torch

#: Terms of G with mu^j below this are dropped.
_NEGLIGIBLE = 1e-18


class RowState(NamedTuple):
    """Rows of the head and their AdamW moments (tensors of shape (n, m))."""

    weight: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor


class RowAdamW:
    """The AdamW rule above for the rows of a sparsely updated head, over a known learning-rate schedule.

    ``lrs[t - 1]`` is the learning rate of optimiser step ``t`` (``t = 1 .. T``). Rows carry the step they were
    last updated at (0: never). :meth:`catch_up` applies the zero-gradient steps a row missed, :meth:`step` one
    step with its gradient.
    """

    def __init__(self, lrs: np.ndarray, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
        beta1, beta2 = float(betas[0]), float(betas[1])
        if not 0 <= beta1 < math.sqrt(beta2) < 1:
            raise ValueError(
                f"betas {list(betas)}: the multistep AdamW update needs 0 <= beta1 < sqrt(beta2) < 1 "
                f"(otherwise a row's update grows while it is out of the batch)"
            )
        lrs = np.asarray(lrs, dtype=np.float64)
        if lrs.ndim != 1 or (lrs < 0).any() or (lrs * weight_decay >= 1).any():
            raise ValueError("lrs must be a 1-d array of learning rates with 0 <= lr * weight_decay < 1")
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, float(eps), float(weight_decay)
        self.total_steps = len(lrs)
        t = np.arange(1, len(lrs) + 1, dtype=np.float64)
        self._lr = np.concatenate([[0.0], lrs])  # index = step
        self._bc1 = np.concatenate([[1.0], -np.expm1(t * math.log(beta1))]) if beta1 > 0 else np.ones(len(t) + 1)
        self._bc2 = np.concatenate([[1.0], -np.expm1(t * math.log(beta2))])
        self._w = math.sqrt(beta2) * self._lr / self._bc1 * np.sqrt(self._bc2)
        # _logc[i] = sum_{l <= i} log c_l, so prod_{l=a}^{b} c_l = exp(_logc[b] - _logc[a - 1]).
        self._logc = np.concatenate([[0.0], np.cumsum(np.log1p(-lrs * weight_decay))])
        self.mu = beta1 / math.sqrt(beta2)
        self.horizon = len(lrs) if self.mu == 0 else min(len(lrs), math.ceil(math.log(_NEGLIGIBLE) / math.log(self.mu)))

    def lr(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (1-based)."""
        return float(self._lr[step])

    def coefficients(self, last: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(C, G, k)`` per row for catching up from step ``last`` to step ``target`` (float64, int64)."""
        last = np.asarray(last, dtype=np.int64)
        if (last > target).any() or target > self.total_steps:
            raise ValueError(f"cannot catch up rows last updated at step {int(last.max())} to step {target}")
        k = target - last
        c_total = np.exp(self._logc[target] - self._logc[last])
        starts, inverse = np.unique(last, return_inverse=True)  # rows share few distinct last steps
        depth = int(min(target - starts.min(initial=target), self.horizon))
        if depth == 0:
            return c_total, np.zeros(len(last)), k
        j = np.arange(1, depth + 1)
        steps = starts[:, None] + j[None, :]  # i = s + j
        valid = steps <= target
        steps = np.where(valid, steps, target)
        tail = np.exp(self._logc[target] - self._logc[steps])  # prod_{l=i+1}^{target} c_l
        terms = np.where(valid, self._w[steps] * self.mu ** j[None, :] * tail, 0.0)
        return c_total, terms.sum(axis=1)[inverse], k

    def catch_up(self, rows: RowState, last: np.ndarray, target: int) -> RowState:
        """Apply the zero-gradient steps ``last + 1 .. target`` of every row in closed form (see the module)."""
        c_total, g, k = self.coefficients(last, target)
        device, dtype = rows.weight.device, rows.weight.dtype
        as_col = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device).to(dtype)[:, None]  # noqa: E731
        first = np.minimum(np.asarray(last, dtype=np.int64) + 1, self.total_steps)
        denom = (rows.exp_avg_sq * self.beta2).sqrt() + self.eps * as_col(np.sqrt(self._bc2[first]))
        ratio = torch.where(rows.exp_avg_sq > 0, rows.exp_avg / denom, torch.zeros_like(rows.exp_avg))
        return RowState(
            rows.weight * as_col(c_total) - as_col(g) * ratio,
            rows.exp_avg * as_col(self.beta1 ** k.astype(np.float64)),
            rows.exp_avg_sq * as_col(self.beta2 ** k.astype(np.float64)),
        )

    def step(self, rows: RowState, grad: torch.Tensor, step: int) -> RowState:
        """One AdamW step ``step`` with gradient ``grad`` (torch's ``AdamW`` formula, bias-corrected at ``step``)."""
        lr = self._lr[step]
        weight = rows.weight * (1.0 - lr * self.weight_decay)
        exp_avg = rows.exp_avg.lerp(grad, 1.0 - self.beta1)
        exp_avg_sq = rows.exp_avg_sq * self.beta2 + (1.0 - self.beta2) * grad * grad
        denom = exp_avg_sq.sqrt() / math.sqrt(self._bc2[step]) + self.eps
        weight = weight - (lr / self._bc1[step]) * exp_avg / denom
        return RowState(weight, exp_avg, exp_avg_sq)
