"""Orthogonal Procrustes distance (OPD) between two representations of the same n examples (Ding et al. 2021).

X (n, d_x) and Y (n, d_y), one example per row: centre every feature over the examples and divide each matrix by
its Frobenius norm, so ``||X||_F = ||Y||_F = 1``; then

    OPD(X, Y) = min_Q ||X - Y Q||_F^2 = ||X||_F^2 + ||Y||_F^2 - 2 ||X^T Y||_* = 2 - 2 ||X^T Y||_*

over Q with orthonormal rows or columns (d_y x d_x), with ``||.||_*`` the nuclear norm (the sum of singular
values). OPD is symmetric, 0 exactly when one representation is an orthogonal transform of the other up to
translation and scale, and lies in [0, 2] (``||X^T Y||_* <= ||X||_F ||Y||_F = 1``).
"""

import numpy as np
import torch

from genssl.evaluate.similarity.cka import as_float64, centre, check_aligned


def opd_from_cross(cross: torch.Tensor, norm_x: torch.Tensor, norm_y: torch.Tensor) -> torch.Tensor:
    """``2 - 2 ||X_c^T Y_c||_* / (||X_c||_F ||Y_c||_F)`` from the cross product of the centred features
    (``cross`` (..., d_x, d_y), batched) and their Frobenius norms; clamped at 0 against rounding."""
    if not bool((norm_x * norm_y > 0).all()):
        raise ValueError("the Procrustes distance is undefined for a representation without variance")
    return (2 - 2 * torch.linalg.svdvals(cross).sum(dim=-1) / (norm_x * norm_y)).clamp(min=0)


def procrustes_distance(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """OPD of X (n, d_x) and Y (n, d_y) (module docstring); in [0, 2]."""
    x, y = as_float64(x), as_float64(y)
    check_aligned(x, y)
    xc, yc = centre(x), centre(y)
    return float(opd_from_cross(xc.T @ yc, torch.linalg.matrix_norm(xc), torch.linalg.matrix_norm(yc)))
