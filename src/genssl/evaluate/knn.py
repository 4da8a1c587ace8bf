"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018, as solo-learn and lightly).

Features are L2-normalised; a query q scores the classes of its k most cosine-similar memory-bank features f_j
(labels y_j) by ``s_c(q) = sum_{j in top-k(q)} exp(cos(q, f_j) / T) [y_j = c]``; the prediction is the class of the
largest score (top-5: the five largest). With k larger than the bank all of it votes. Similarities are formed for
a block of queries at a time (:data:`BLOCK_ENTRIES` entries), so memory is O(block x bank), not O(queries x bank).
"""

import numpy as np
import torch
import torch.nn.functional as F

#: Query x bank similarities held at once (256 MiB of float32).
BLOCK_ENTRIES = 1 << 26


def knn_scores(
    bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, temperature: float, classes: int
) -> torch.Tensor:
    """Class scores (Q, classes) of the queries (Q, D) against the bank (N, D) with labels (N,) (module docstring)."""
    bank, queries = F.normalize(bank.float(), dim=1), F.normalize(queries.float(), dim=1)
    k = min(k, len(bank))
    block = max(1, BLOCK_ENTRIES // max(len(bank), 1))
    scores = torch.zeros((len(queries), classes), dtype=torch.float32, device=queries.device)
    for start in range(0, len(queries), block):
        similarity, neighbours = (queries[start : start + block] @ bank.T).topk(k, dim=1)
        weights = (similarity / temperature).exp()
        scores[start : start + block].scatter_add_(1, bank_labels[neighbours], weights)
    return scores


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` highest scores, for each k (capped at the class count)."""
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    order = scores.argsort(dim=1, descending=True, stable=True)
    hits = order == labels.to(order.device)[:, None]
    return {k: int(hits[:, : min(k, scores.shape[1])].any(dim=1).sum()) / len(labels) for k in ks}


def knn_accuracy(
    bank: np.ndarray,
    bank_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    ks: list[int],
    temperature: float,
    classes: int,
) -> dict[str, dict[str, float]]:
    """``{str(k): {"top1", "top5"}}`` of the weighted kNN classifier for each k in ``ks``."""
    bank_t, queries_t = torch.from_numpy(bank), torch.from_numpy(queries)
    labels_t, targets = torch.from_numpy(bank_labels).long(), torch.from_numpy(query_labels).long()
    out = {}
    for k in ks:
        accuracy = topk_accuracy(knn_scores(bank_t, labels_t, queries_t, k, temperature, classes), targets)
        out[str(k)] = {"top1": accuracy[1], "top5": accuracy[5]}
    return out
