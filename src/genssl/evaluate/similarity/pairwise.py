"""Linear CKA (biased and debiased) and orthogonal Procrustes distance between every pair of E representations of
the same examples, sharing the work: each representation is centred once, and one cross product
``C_ij = X_i,c^T X_j,c`` per pair gives all three statistics (``||C_ij||_F^2`` for both CKAs, the singular values of
``C_ij`` for OPD; formulas in :mod:`~genssl.evaluate.similarity.cka` and
:mod:`~genssl.evaluate.similarity.procrustes`).
"""

from collections.abc import Sequence

import numpy as np
import torch

from genssl.evaluate.similarity.cka import as_float64, centre, cka_ratio, hsic_unbiased
from genssl.evaluate.similarity.procrustes import opd_from_cross

#: The statistics of :func:`similarity_matrices`, in the order of their arrays.
STATISTICS = ("cka", "cka_debiased", "opd")


def similarity_matrices(
    features: Sequence[np.ndarray | torch.Tensor], rows: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """Symmetric (E, E) float64 matrices ``cka``, ``cka_debiased`` and ``opd`` of the representations
    ``features[i]`` (n, d_i), all over the same n examples, restricted to ``rows`` (indices, repeats allowed, as a
    bootstrap resample draws them) when given. The diagonals are exactly 1, 1 and 0."""
    chosen = [as_float64(x) if rows is None else as_float64(x)[rows] for x in features]
    n = len(chosen[0])
    if any(len(x) != n for x in chosen):
        raise ValueError(f"representations of {sorted({len(x) for x in chosen})} examples; they must be aligned rows")
    centred = [centre(x) for x in chosen]
    sq_norms = [x.square().sum(dim=1) for x in centred]  # a_i = ||x_i||^2 per example
    frobenius = [torch.linalg.matrix_norm(x) for x in centred]
    count = len(centred)

    def cross_terms(i: int, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cross = centred[i].T @ centred[j]
        square = cross.square().sum()
        unbiased = hsic_unbiased(square, (sq_norms[i] * sq_norms[j]).sum(), sq_norms[i].sum(), sq_norms[j].sum(), n)
        return cross, square, unbiased

    self_terms = [cross_terms(i, i) for i in range(count)]
    out = {name: np.zeros((count, count)) for name in STATISTICS}
    for i in range(count):
        out["cka"][i, i] = out["cka_debiased"][i, i] = 1.0
        for j in range(i + 1, count):
            cross, square, unbiased = cross_terms(i, j)
            values = {
                "cka": cka_ratio(square, self_terms[i][1], self_terms[j][1]),
                "cka_debiased": cka_ratio(unbiased, self_terms[i][2], self_terms[j][2]),
                "opd": opd_from_cross(cross, frobenius[i], frobenius[j]),
            }
            for name, value in values.items():
                out[name][i, j] = out[name][j, i] = float(value)
    return out
