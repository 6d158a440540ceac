"""An exact Gaussian process in NumPy, sized for the tens to hundreds of points of a benchmark run.

Why not scikit-learn's regressor: it rebuilds everything on every fit (and spends most of its time
in parameter validation); here a refit after one new point costs a few hundred microseconds:

- Matern 5/2 kernel with one length scale per input column (ARD), a signal variance and a noise
  variance, on standardised targets;
- optionally (``linear=True``) a linear term σ²_lin·(x − ½)·(x′ − ½), so that far from the data the
  prediction follows the measured trend instead of reverting to the mean (a latency that grows with
  the batch size, a linear constraint ``x1 + x2 ≤ 16``);
- hyper-parameters by maximum a posteriori: the log marginal likelihood (analytic gradient) plus a
  log-normal prior on the length scales (median 1, the width of the unit cube the inputs live in,
  log-sd 1), so a GP fitted on five points neither interpolates wildly nor flattens out;
  L-BFGS-B (scipy) warm-started from the previous fit, re-run only every ``refit_every`` fits once
  there are ``always_refit_below`` points;
- between hyper-parameter refits the Cholesky factor is *extended* with the new rows (a block
  update, O(n²) per point) instead of being recomputed (O(n³)).

Everything is deterministic for given inputs: no random restarts. Model-based ``ask`` methods run
under :func:`single_blas_thread`: on matrices this small, a multi-threaded BLAS spends more time
waking threads than computing (ten times more on a loaded two-core machine), and one thread also
makes the floating-point reduction order the same on every run.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, TypeVar

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

__all__ = ["GaussianProcess", "matern52", "single_blas_thread"]

_SQRT5 = math.sqrt(5.0)
_JITTER = 1e-8


F = TypeVar("F", bound=Callable)


def single_blas_thread(method: F) -> F:
    """Run ``method`` with BLAS limited to one thread (see the module docstring)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with threadpool_limits(1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def matern52(A: np.ndarray, B: np.ndarray, lengthscales: np.ndarray, variance: float) -> np.ndarray:
    """The Matern 5/2 kernel matrix between the rows of ``A`` and ``B``."""
    r = np.sqrt(_sqdist(A / lengthscales, B / lengthscales))
    return variance * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQRT5 * r)


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T
    return np.maximum(d, 0.0)


class GaussianProcess:
    """GP regression with cheap refits: ``fit(X, y)`` then ``predict(Xc) -> (mean, sd)``.

    ``fit`` is meant to be called with the whole (growing) data set each time; when the previous
    inputs are a prefix of the new ones and the hyper-parameters are kept, the factor is extended.
    """

    def __init__(self, *, refit_every: int = 3, always_refit_below: int = 12, maxiter: int = 60,
                 min_noise: float = 1e-6, max_noise: float = 0.5, lengthscale_prior: tuple[float, float] | None = None,
                 min_y_std: float = 1e-12, linear: bool = False, min_signal_var: float = 5e-2) -> None:
        self.refit_every = refit_every
        self.always_refit_below = always_refit_below
        self.maxiter = maxiter
        self.min_noise = min_noise
        self.max_noise = max_noise
        self.lengthscale_prior = lengthscale_prior
        self.min_y_std = min_y_std
        self.linear = linear
        self.min_signal_var = min_signal_var
        # log length scales..., log signal variance, [log linear-term variance,] log noise variance
        self.theta: np.ndarray | None = None
        self._n_fits = 0
        self._X: np.ndarray | None = None
        self._L: np.ndarray | None = None
        self._alpha: np.ndarray | None = None
        self._y_mean = 0.0
        self._y_std = 1.0

    # -- hyper-parameters ------------------------------------------------------------------------
    def _prior(self, dim: int) -> tuple[float, float]:
        """(mean, sd) of the log length scales: median 1 (the width of the unit cube) unless given."""
        if self.lengthscale_prior is not None:
            return tuple(self.lengthscale_prior)
        return 0.0, 1.0

    def _n_hyper(self, dim: int) -> int:
        return dim + (3 if self.linear else 2)

    def _bounds(self, dim: int) -> list[tuple[float, float]]:
        linear = [(math.log(1e-4), math.log(10.0))] if self.linear else []
        return ([(math.log(1e-2), math.log(1e3))] * dim + [(math.log(self.min_signal_var), math.log(20.0))] + linear
                + [(math.log(self.min_noise), math.log(self.max_noise))])

    def _initial_theta(self, dim: int) -> np.ndarray:
        mu, _ = self._prior(dim)
        linear = [math.log(0.1)] if self.linear else []
        return np.concatenate([np.full(dim, mu - 1.0), [max(0.0, math.log(self.min_signal_var))], linear,
                               [math.log(1e-3)]])

    def _neg_log_posterior(self, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        n, dim = X.shape
        ls, var, noise = np.exp(theta[:dim]), math.exp(theta[dim]), math.exp(theta[-1])
        Xs = X / ls
        r = np.sqrt(_sqdist(Xs, Xs))
        e = np.exp(-_SQRT5 * r)
        Kf = var * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * e
        K = Kf + (noise + _JITTER) * np.eye(n)
        if self.linear:
            Klin = math.exp(theta[dim + 1]) * (X - 0.5) @ (X - 0.5).T
            K = K + Klin
        try:
            L = cholesky(K, lower=True, check_finite=False)
        except LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = cho_solve((L, True), y, check_finite=False)
        nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * math.log(2 * math.pi)
        W = cho_solve((L, True), np.eye(n), check_finite=False) - np.outer(alpha, alpha)
        M = W * (var * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * e)
        grad_ls = 0.5 * 2.0 * ((Xs * Xs).T @ M.sum(1) - ((M @ Xs) * Xs).sum(0))
        linear = [0.5 * (W * Klin).sum()] if self.linear else []
        grad = np.concatenate([grad_ls, [0.5 * (W * Kf).sum()], linear, [0.5 * noise * np.trace(W)]])
        mu, sd = self._prior(dim)
        z = (theta[:dim] - mu) / sd
        nll += 0.5 * (z * z).sum()
        grad[:dim] += z / sd
        return float(nll), grad

    def _optimise(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        dim = X.shape[1]
        start = self.theta if self.theta is not None and len(self.theta) == self._n_hyper(dim) else self._initial_theta(dim)
        res = minimize(self._neg_log_posterior, start, args=(X, y), jac=True, method="L-BFGS-B",
                       bounds=self._bounds(dim), options={"maxiter": self.maxiter})
        return res.x if np.all(np.isfinite(res.x)) else start

    # -- fitting ---------------------------------------------------------------------------------
    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        dim = A.shape[1]
        K = matern52(A, B, np.exp(self.theta[:dim]), math.exp(self.theta[dim]))
        if self.linear:
            K += math.exp(self.theta[dim + 1]) * (A - 0.5) @ (B - 0.5).T
        return K

    def _noise(self) -> float:
        return math.exp(self.theta[-1]) + _JITTER

    def fit(self, X: np.ndarray, y: np.ndarray) -> "GaussianProcess":
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        self._y_mean = float(y.mean())
        self._y_std = max(float(y.std()), self.min_y_std) if y.std() > 1e-12 else max(1.0, self.min_y_std)
        ys = (y - self._y_mean) / self._y_std
        n = len(X)
        refit = (self.theta is None or n < self.always_refit_below or self._n_fits % self.refit_every == 0
                 or len(self.theta) != self._n_hyper(X.shape[1]))
        self._n_fits += 1
        if refit:
            self.theta = self._optimise(X, ys)
            self._L = None
        old = self._X
        if (self._L is not None and old is not None and len(old) <= n and old.shape[1] == X.shape[1]
                and np.array_equal(old, X[: len(old)])):
            self._L = self._extend(self._L, old, X[len(old):])
        else:
            self._L = self._factor(X)
        self._X = X.copy()
        self._alpha = cho_solve((self._L, True), ys, check_finite=False)
        return self

    def _factor(self, X: np.ndarray) -> np.ndarray:
        K = self._kernel(X, X) + self._noise() * np.eye(len(X))
        for extra in (0.0, 1e-6, 1e-4):
            try:
                return cholesky(K + extra * np.eye(len(X)), lower=True, check_finite=False)
            except LinAlgError:
                continue
        raise LinAlgError("kernel matrix is not positive definite even with jitter")

    def _extend(self, L: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Cholesky factor of the kernel matrix of ``old + new`` from the factor ``L`` of ``old``."""
        if len(new) == 0:
            return L
        B = solve_triangular(L, self._kernel(old, new), lower=True, check_finite=False)
        S = self._kernel(new, new) + self._noise() * np.eye(len(new)) - B.T @ B
        try:
            L22 = cholesky(S, lower=True, check_finite=False)
        except LinAlgError:
            return self._factor(np.vstack([old, new]))
        n, k = len(old), len(new)
        out = np.zeros((n + k, n + k))
        out[:n, :n] = L
        out[n:, :n] = B.T
        out[n:, n:] = L22
        return out

    def predict(self, Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the latent function (original target units)."""
        assert self._L is not None and self._X is not None, "fit first"
        Ks = self._kernel(np.asarray(Xc, dtype=float), self._X)
        mean = Ks @ self._alpha
        v = solve_triangular(self._L, Ks.T, lower=True, check_finite=False)
        dim = self._X.shape[1]
        prior = math.exp(self.theta[dim]) * np.ones(len(Ks))
        if self.linear:
            prior += math.exp(self.theta[dim + 1]) * ((np.asarray(Xc, dtype=float) - 0.5) ** 2).sum(1)
        var = np.maximum(prior - (v * v).sum(0), 1e-12)
        return mean * self._y_std + self._y_mean, np.sqrt(var) * self._y_std
