"""L2-regularised logistic regression on standardised features, with two solvers of one objective.

For n examples x_i (standardised: each feature minus its mean, divided by its standard deviation over the fit
set; a constant feature is left at 0) with labels y_i among K classes, the classifier minimises

    J(W, b) = (1 / n) sum_i CE(W x_i + b, y_i) + ||W||_F^2 / (2 C n)

(scikit-learn's objective ``C sum_i CE + ||W||^2 / 2`` divided by C n; the intercept b is not penalised). CE is the
softmax cross-entropy over K >= 3 classes (W is K x D); for K = 2 it is the binary logistic loss of one weight
vector, as scikit-learn fits it. Two solvers reach the same minimiser (J is strictly convex in W), both L-BFGS
stopping when the largest absolute entry of the gradient of J falls below ``tol``:

- ``sklearn``: ``sklearn.linear_model.LogisticRegression`` (lbfgs), on the CPU;
- ``torch``: ``torch.optim.LBFGS`` with a strong-Wolfe line search, full batch on the features' device (float64
  on the CPU, float32 on CUDA), the loss and gradient accumulated over row blocks so that ImageNet-size feature
  sets (1.28 M x 2048) fit on one GPU.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Logit entries formed at once by the torch solver (rows per block = this // K).
BLOCK_ENTRIES = 1 << 25


@dataclass
class Standardiser:
    """Per-feature mean and standard deviation of a fit set (a zero deviation is replaced by 1)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> "Standardiser":
        features = np.asarray(features, dtype=np.float64)
        std = features.std(axis=0)
        return cls(features.mean(axis=0), np.where(std > 0, std, 1.0))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, dtype=np.float64) - self.mean) / self.std


@dataclass
class LinearClassifier:
    """Weights (K, D) and intercepts (K,) of the scores ``x W^T + b`` (for K = 2 the first row is zero)."""

    weight: np.ndarray
    bias: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weight.T + self.bias


def objective(classifier: LinearClassifier, features: np.ndarray, labels: np.ndarray, c: float) -> float:
    """J(W, b) of the module docstring (float64), for comparing solutions."""
    n, classes = len(labels), classifier.weight.shape[0]
    scores = torch.from_numpy(classifier.scores(features))
    if classes == 2:
        data = F.binary_cross_entropy_with_logits(scores[:, 1], torch.from_numpy(labels).double())
        penalty = float(np.square(classifier.weight[1]).sum())
    else:
        data = F.cross_entropy(scores, torch.from_numpy(labels).long())
        penalty = float(np.square(classifier.weight).sum())
    return float(data) + penalty / (2 * c * n)


def _from_binary(weight: np.ndarray, bias: np.ndarray) -> LinearClassifier:
    """A binary model's one weight vector as K = 2 score rows (0 for class 0, x w + b for class 1)."""
    return LinearClassifier(np.stack([np.zeros_like(weight[0]), weight[0]]), np.array([0.0, bias[0]]))


def fit_sklearn(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    c: float,
    max_iter: int,
    tol: float,
    start: LinearClassifier | None = None,
) -> LinearClassifier:
    """Minimise J with scikit-learn's lbfgs, warm-started from ``start`` when given."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter, tol=tol, warm_start=start is not None)
    if start is not None:
        model.coef_ = start.weight[1:].copy() if classes == 2 else start.weight.copy()
        model.intercept_ = start.bias[1:].copy() if classes == 2 else start.bias.copy()
    model.fit(features, labels)
    if classes == 2:
        return _from_binary(model.coef_, model.intercept_)
    return LinearClassifier(model.coef_.astype(np.float64), model.intercept_.astype(np.float64))


def fit_torch(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    c: float,
    max_iter: int,
    tol: float,
    device: torch.device,
    start: LinearClassifier | None = None,
) -> LinearClassifier:
    """Minimise J with full-batch ``torch.optim.LBFGS`` on ``device``, warm-started from ``start`` when given."""
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    x = torch.as_tensor(features, dtype=dtype, device=device)
    y = torch.as_tensor(labels, dtype=torch.long, device=device)
    n, rows = len(x), 1 if classes == 2 else classes
    weight = torch.zeros((rows, x.shape[1]), dtype=dtype, device=device)
    bias = torch.zeros(rows, dtype=dtype, device=device)
    if start is not None:
        weight.copy_(torch.from_numpy(start.weight[1:] if classes == 2 else start.weight))
        bias.copy_(torch.from_numpy(start.bias[1:] if classes == 2 else start.bias))
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * 5 // 4,
        tolerance_grad=tol,
        tolerance_change=1e-12 if dtype == torch.float64 else 1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    block = max(1, BLOCK_ENTRIES // classes)

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        total = torch.zeros((), dtype=dtype, device=device)
        for begin in range(0, n, block):
            scores = x[begin : begin + block] @ weight.T + bias
            target = y[begin : begin + block]
            if classes == 2:
                part = F.binary_cross_entropy_with_logits(scores[:, 0], target.to(dtype), reduction="sum")
            else:
                part = F.cross_entropy(scores, target, reduction="sum")
            (part / n).backward()
            total += part.detach() / n
        penalty = weight.square().sum() / (2 * c * n)
        penalty.backward()
        return total + penalty.detach()

    optimizer.step(closure)
    w, b = weight.detach().cpu().double().numpy(), bias.detach().cpu().double().numpy()
    return _from_binary(w, b) if classes == 2 else LinearClassifier(w, b)
