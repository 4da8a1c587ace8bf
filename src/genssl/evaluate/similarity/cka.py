"""Centred kernel alignment (CKA) with linear kernels, between two representations of the same n examples.

X (n, d_x) and Y (n, d_y) hold one example per row, aligned by row. With K = X X^T and L = Y Y^T:

- **biased** (Kornblith et al. 2019): with each feature centred over the examples (H = I - 11^T / n),
  ``HSIC_0(K, L) = tr(K H L H) / (n - 1)^2 = ||Y_c^T X_c||_F^2 / (n - 1)^2`` and
  ``CKA = HSIC_0(K, L) / sqrt(HSIC_0(K, K) HSIC_0(L, L)) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)``;
- **debiased**: the same ratio of the unbiased HSIC estimator (Song et al. 2012), with K~ and L~ the Gram
  matrices with their diagonals set to zero,
  ``HSIC_1 = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n - 1)(n - 2)) - 2 / (n - 2) 1^T K~ L~ 1] / (n (n - 3))``.
  HSIC_1 is invariant to shifting X or Y, so it is evaluated on centred features, where with
  a_i = ||x_i||^2, b_i = ||y_i||^2 the terms are ``tr(K~ L~) = ||Y_c^T X_c||_F^2 - sum a b``,
  ``1^T K~ 1 = -sum a``, ``1^T L~ 1 = -sum b`` and ``1^T K~ L~ 1 = sum a b``: O(n d^2) time and O(d^2) memory,
  never an n x n matrix;
- **minibatch** (Nguyen et al. 2021): over minibatches i = 1..k of m examples,
  ``CKA_mb = sum_i HSIC_1(K_i, L_i) / sqrt(sum_i HSIC_1(K_i, K_i) sum_i HSIC_1(L_i, L_i))``, for feature sets
  that do not fit in memory at once (:class:`MinibatchCKA` accumulates batch by batch). Its expectation is the
  population CKA's numerator and denominator estimated without bias, so it approaches the debiased CKA of the
  whole set as batches accumulate.

Functions take float tensors (computed in float64) or arrays; the results are Python floats.
"""

import numpy as np
import torch


def as_float64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``x`` as a float64 tensor (on its device)."""
    return torch.as_tensor(x).to(torch.float64)


def check_aligned(x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse anything but two (n, d) matrices with the same number of rows."""
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"expected (n, d) feature matrices, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) != len(y):
        raise ValueError(f"the two representations hold {len(x)} and {len(y)} examples; they must be aligned rows")


def centre(x: torch.Tensor) -> torch.Tensor:
    """Each feature (column) minus its mean over the examples (rows)."""
    return x - x.mean(dim=0, keepdim=True)


def hsic_unbiased(
    cross_sq: torch.Tensor, ab: torch.Tensor, sum_a: torch.Tensor, sum_b: torch.Tensor, n: int
) -> torch.Tensor:
    """HSIC_1 from its feature-space terms for centred features (module docstring): ``cross_sq = ||Y_c^T X_c||_F^2``,
    ``ab = sum_i a_i b_i``, ``sum_a = sum_i a_i``, ``sum_b = sum_i b_i`` over ``n >= 4`` examples."""
    if n < 4:
        raise ValueError(f"the unbiased HSIC estimator needs at least 4 examples, got {n}")
    return (cross_sq - ab + sum_a * sum_b / ((n - 1) * (n - 2)) - 2 * ab / (n - 2)) / (n * (n - 3))


def hsic_unbiased_centred(xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
    """HSIC_1 of the linear kernels of column-centred ``xc`` (n, d_x) and ``yc`` (n, d_y), n >= 4."""
    a, b = xc.square().sum(dim=1), yc.square().sum(dim=1)
    return hsic_unbiased((yc.T @ xc).square().sum(), (a * b).sum(), a.sum(), b.sum(), len(xc))


def cka_ratio(xy: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """``xy / sqrt(xx yy)``: CKA from HSIC(K, L), HSIC(K, K), HSIC(L, L) (elementwise; tensors of any shape).
    A representation without variance has HSIC(K, K) = 0 and makes CKA undefined: refused."""
    denominator = torch.sqrt(xx * yy)
    if not bool((denominator > 0).all()):
        raise ValueError("CKA is undefined for a representation without variance (constant features)")
    return xy / denominator


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, debiased: bool = False) -> float:
    """Linear CKA of X (n, d_x) and Y (n, d_y): biased (``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)``)
    or, with ``debiased``, the ratio of unbiased HSIC estimates."""
    x, y = as_float64(x), as_float64(y)
    check_aligned(x, y)
    xc, yc = centre(x), centre(y)
    if debiased:
        hsic = hsic_unbiased_centred
        return float(cka_ratio(hsic(xc, yc), hsic(xc, xc), hsic(yc, yc)))
    return float(cka_ratio((yc.T @ xc).square().sum(), (xc.T @ xc).square().sum(), (yc.T @ yc).square().sum()))


class MinibatchCKA:
    """Minibatch linear CKA (Nguyen et al. 2021): ``update`` with aligned batches, then ``value``.

    Each batch of m >= 4 examples adds HSIC_1(K_i, L_i), HSIC_1(K_i, K_i) and HSIC_1(L_i, L_i). With m smaller
    than the feature dimensions the terms come from the batch's m x m centred Gram matrices (tr(K~ L~) =
    <K_c, L_c> - sum a b, a = diag K_c), O(m^2 d) time, else from the d x d cross products, O(m d^2); memory is one
    batch whatever the number of examples.
    """

    def __init__(self) -> None:
        self.xy = self.xx = self.yy = 0.0
        self.batches = 0
        self.examples = 0

    def update(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> None:
        """Add one minibatch of aligned examples X (m, d_x), Y (m, d_y)."""
        x, y = as_float64(x), as_float64(y)
        check_aligned(x, y)
        xc, yc = centre(x), centre(y)
        m = len(xc)
        if m < max(xc.shape[1], yc.shape[1]):
            gram_k, gram_l = xc @ xc.T, yc @ yc.T
            a, b = gram_k.diagonal(), gram_l.diagonal()
            squares = {"xy": (gram_k * gram_l).sum(), "xx": gram_k.square().sum(), "yy": gram_l.square().sum()}
        else:
            a, b = xc.square().sum(dim=1), yc.square().sum(dim=1)
            squares = {
                "xy": (yc.T @ xc).square().sum(),
                "xx": (xc.T @ xc).square().sum(),
                "yy": (yc.T @ yc).square().sum(),
            }
        self.xy += float(hsic_unbiased(squares["xy"], (a * b).sum(), a.sum(), b.sum(), m))
        self.xx += float(hsic_unbiased(squares["xx"], (a * a).sum(), a.sum(), a.sum(), m))
        self.yy += float(hsic_unbiased(squares["yy"], (b * b).sum(), b.sum(), b.sum(), m))
        self.batches += 1
        self.examples += m

    def value(self) -> float:
        """``sum HSIC_1(K_i, L_i) / sqrt(sum HSIC_1(K_i, K_i) sum HSIC_1(L_i, L_i))`` over the batches so far."""
        if not self.batches:
            raise ValueError("minibatch CKA of no batches")
        values = torch.tensor([self.xy, self.xx, self.yy], dtype=torch.float64)
        return float(cka_ratio(*values))


def minibatch_cka(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, batch_size: int, generator: torch.Generator
) -> float:
    """Minibatch CKA of aligned X and Y over one random permutation (drawn from ``generator``) cut into
    ``n // batch_size`` batches of ``batch_size`` examples (the remainder is dropped)."""
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    check_aligned(x, y)
    if not 4 <= batch_size <= len(x):
        raise ValueError(f"minibatch CKA needs 4 <= batch_size <= n = {len(x)}, got {batch_size}")
    order = torch.randperm(len(x), generator=generator)
    accumulator = MinibatchCKA()
    for start in range(0, len(x) - batch_size + 1, batch_size):
        rows = order[start : start + batch_size]
        accumulator.update(x[rows], y[rows])
    return accumulator.value()
