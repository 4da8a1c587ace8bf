r"""Toy theory of S-DIET: for a linear encoder, DIET (MSE) and the spectral contrastive loss agree.

Setting. N source points x_i in R^d, each with J augmented samples a_ij = x_i + A xi_ij (A anisotropic, so the
augmentation noise is strong along some directions). Linear encoder f(a) = W a, W in R^{k x d}, k < d. Moments over
the sample (uncentred):

    mu_i = (1/J) sum_j a_ij,    M = (1/N) sum_i mu_i mu_i^T,    Sigma = (1/(NJ)) sum_ij a_ij a_ij^T,

and B = Sigma^{-1/2} M Sigma^{-1/2} with eigenvalues lambda_1 >= ... >= lambda_d (in [0, 1], since Sigma - M is the
within-datum scatter); eigenvectors u of B map to generalised eigenvectors w = Sigma^{-1/2} u of M w = lambda Sigma w.

Spectral contrastive loss (HaoChen et al. 2021), sample form: positives are all ordered pairs (j, j') of the same i,
negatives all ordered pairs of samples. Since mean_{j,j'} f(a_ij)^T f(a_ij') = |W mu_i|^2 and
mean_{a,b} (a^T W^T W b)^2 = tr((W Sigma W^T)^2), with V = W Sigma^{1/2},

    L_scl(W) = -2 tr(W M W^T) + tr((W Sigma W^T)^2) = |V^T V - B|_F^2 - |B|_F^2,

minimised when V^T V is the best rank-k approximation of B: row(V) = span(u_1..u_k), so
row(W) = span(w_1..w_k) and min L_scl = -sum_{i<=k} lambda_i^2.

DIET with MSE, sample form: L_diet(W, W_H) = mean_ij |W_H W a_ij - e_i|^2, W_H in R^{N x k}, e_i the one-hot index
of the datum. With Z = W_H W (rank <= k) and C = mean_ij a_ij e_i^T, whose columns are mu_i / N (so C C^T = M / N),

    L_diet = |Z Sigma^{1/2} - C^T Sigma^{-1/2}|_F^2 + 1 - tr(B) / N,

a rank-k reduced-rank regression: row(Z Sigma^{1/2}) = top-k right singular vectors of C^T Sigma^{-1/2}, i.e. the
top-k eigenvectors of Sigma^{-1/2} C C^T Sigma^{-1/2} = B / N. Hence row(W) = row(Z) = span(w_1..w_k) again and
min L_diet = 1 - (1/N) sum_{i<=k} lambda_i.

Both minimisers therefore share their row space (given a gap lambda_k > lambda_{k+1}), which the tests check by
optimising the sample-form losses numerically. Plain PCA (top-k eigenvectors of Sigma) is the negative control: it
follows the high-variance augmentation noise and lands far from that row space.
"""

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import scipy.linalg
import torch

D, K, N, J = 8, 3, 40, 6
GRAD_TOL = 1e-6  # converged: gradient norm of the loss below this (reached: ~1e-7 SCL, ~1e-8 DIET)
# Near the minimum a gradient of norm g leaves the row space ~ g / h off, h the curvature across the eigen-gap:
# ~ (lambda_k - lambda_{k+1}) / N ~ 1e-2 for DIET (its 1/N-scaled one-hot fit), larger for SCL. So GRAD_TOL bounds the
# angle by ~1e-4 rad (measured angle / gradient ratios are 1-12, and the angles ~1e-7 rad); the loss values by
# g^2 / (2 h) ~ 5e-11.
ANGLE_TOL = 1e-4
LOSS_TOL = 1e-9
CONTROL_MIN_ANGLE = 0.1
MIN_RELATIVE_GAP = 0.2  # (lambda_k - lambda_{k+1}) / lambda_k


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _make_problem(seed: int = 0) -> dict[str, np.ndarray]:
    """Samples a (N, J, D), with noise strong in 3 directions, weak in 3, moderate in 2 (all rotated)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)) @ _random_rotation(rng, D).T
    noise_scale = np.array([3.0, 3.0, 3.0, 0.1, 0.1, 0.1, 1.0, 1.0])
    a_noise = _random_rotation(rng, D) @ np.diag(noise_scale)
    samples = x[:, None, :] + rng.standard_normal((N, J, D)) @ a_noise.T
    mu = samples.mean(axis=1)
    m = mu.T @ mu / N
    flat = samples.reshape(N * J, D)
    sigma = flat.T @ flat / (N * J)
    eigvals, eigvecs = scipy.linalg.eigh(m, sigma)  # ascending; M w = lambda Sigma w
    return {
        "samples": samples,
        "M": m,
        "Sigma": sigma,
        "lambdas": eigvals[::-1],
        "top_k": eigvecs[:, ::-1][:, :K],
        "pca_top_k": np.linalg.eigh(sigma)[1][:, ::-1][:, :K],
    }


def _scl_loss(w: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Spectral contrastive loss in sample form: -2 E_pos[f^T f'] + E_{a,b}[(f(a)^T f(b))^2]."""
    f = samples @ w.T  # (N, J, K)
    positive = torch.einsum("ijk,ilk->ijl", f, f).mean()  # all ordered (j, j') of the same i, j = j' included
    flat = f.reshape(-1, w.shape[0])
    negative = ((flat @ flat.T) ** 2).mean()  # all ordered pairs of samples
    return -2 * positive + negative


def _diet_loss(w: torch.Tensor, w_head: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """DIET with MSE: mean_ij |W_H W a_ij - e_i|^2."""
    pred = samples @ w.T @ w_head.T  # (N, J, N)
    target = torch.eye(samples.shape[0], dtype=samples.dtype)[:, None, :]
    return ((pred - target) ** 2).sum(-1).mean()


def _minimise(
    loss_fn: Callable[[], torch.Tensor],
    params: list[torch.Tensor],
    rebalance: Callable[[], None] | None = None,
    max_rounds: int = 20,
) -> float:
    """Full-batch L-BFGS (strong Wolfe) rounds until the gradient norm is below GRAD_TOL or the loss stops falling.

    `rebalance`, if given, runs before each round; it must leave the loss unchanged (a gauge transformation).
    Returns the final gradient norm.
    """
    best = float("inf")
    for _ in range(max_rounds):
        if rebalance is not None:
            rebalance()
        opt = torch.optim.LBFGS(
            params, lr=1, max_iter=500, history_size=50, tolerance_grad=1e-14, tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure(opt: torch.optim.LBFGS = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
        loss = loss_fn()
        grad_norm = float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])))
        if grad_norm < GRAD_TOL or float(loss) >= best:
            break
        best = float(loss)
    return grad_norm


def _max_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Largest principal angle (rad) between the column spans of a and b."""
    return float(scipy.linalg.subspace_angles(a, b).max())


def _solve(problem_seed: int, init_seed: int) -> dict:
    """Minimise both sample-form losses from seeded random inits; return the problem with W_scl, W_diet, diagnostics."""
    prob = _make_problem(problem_seed)
    samples = torch.from_numpy(prob["samples"])
    gen = torch.Generator().manual_seed(init_seed)

    w_scl = (0.3 * torch.randn(K, D, generator=gen, dtype=torch.float64)).requires_grad_()
    grad_scl = _minimise(lambda: _scl_loss(w_scl, samples), [w_scl])

    w_diet = (0.3 * torch.randn(K, D, generator=gen, dtype=torch.float64)).requires_grad_()
    w_head = (0.3 * torch.randn(N, K, generator=gen, dtype=torch.float64)).requires_grad_()

    def balance() -> None:
        """W, W_H <- sqrt(S) V^T, U sqrt(S) from the SVD of W_H W: same product, so same loss, but no drift into the
        badly conditioned |W| -> 0, |W_H| -> oo corner of the gauge orbit (W_H G^-1, G W), where L-BFGS crawls."""
        with torch.no_grad():
            u, s, vt = torch.linalg.svd(w_head @ w_diet, full_matrices=False)
            w_diet.copy_(s[:K, None].sqrt() * vt[:K])
            w_head.copy_(u[:, :K] * s[:K].sqrt())

    grad_diet = _minimise(lambda: _diet_loss(w_diet, w_head, samples), [w_diet, w_head], rebalance=balance)

    with torch.no_grad():
        loss_scl = float(_scl_loss(w_scl, samples))
        loss_diet = float(_diet_loss(w_diet, w_head, samples))
    return {
        **prob,
        "W_scl": w_scl.detach().numpy(),
        "W_diet": w_diet.detach().numpy(),
        "grad_scl": grad_scl,
        "grad_diet": grad_diet,
        "loss_scl": loss_scl,
        "loss_diet": loss_diet,
    }


@pytest.fixture(scope="module")
def solved() -> Iterator[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _solve(problem_seed=0, init_seed=0)
    finally:
        torch.set_num_threads(threads)


def test_problem_has_eigen_gap(solved):
    lam = solved["lambdas"]
    assert lam[K - 1] > 0 and (lam[K - 1] - lam[K]) / lam[K - 1] > MIN_RELATIVE_GAP, lam


def test_optimisers_converged(solved):
    assert solved["grad_scl"] < GRAD_TOL
    assert solved["grad_diet"] < GRAD_TOL
    lam = solved["lambdas"]
    # The sample-form losses reach the closed-form minima of the moment forms (global, not a saddle).
    assert solved["loss_scl"] == pytest.approx(-(lam[:K] ** 2).sum(), abs=LOSS_TOL)
    assert solved["loss_diet"] == pytest.approx(1 - lam[:K].sum() / N, abs=LOSS_TOL)


def test_diet_and_spectral_share_row_space(solved):
    assert _max_angle(solved["W_scl"].T, solved["W_diet"].T) < ANGLE_TOL


@pytest.mark.parametrize("which", ["W_scl", "W_diet"])
def test_row_space_is_top_k_generalised_eigenvectors(solved, which):
    assert _max_angle(solved[which].T, solved["top_k"]) < ANGLE_TOL


@pytest.mark.parametrize("which", ["W_scl", "W_diet"])
def test_negative_control_pca_is_far(solved, which):
    """PCA of Sigma follows the augmentation noise: the angle metric must separate it from the DIET/SCL solution."""
    assert _max_angle(solved["pca_top_k"], solved["top_k"]) > CONTROL_MIN_ANGLE
    assert _max_angle(solved[which].T, solved["pca_top_k"]) > CONTROL_MIN_ANGLE
