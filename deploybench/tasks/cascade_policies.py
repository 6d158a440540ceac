"""Exit policies for serving cascades and early-exit networks, and the T-Tamer dynamic index.

A cascade consults its loaded members in order. After each member a policy decides, from what is
observable at serving time only (each consulted member's proxy loss ``u = 1 - confidence`` and its
predicted class), whether to stop; it then serves either the last member consulted (no recall) or
the consulted member it believes best (recall). Labels and correctness are never shown to a policy:
:class:`ObservedRecords` is the masked view they read.

The dynamic-index policy follows T-Tamer (arXiv 2509.22992, ICLR 2026): proxy losses are binned,
the bins are modelled as a Markov chain along the cascade (first-bin distribution and per-edge
transition matrices, fitted on a calibration split), and a backward recursion over the state
(best estimated loss so far, last bin, position) gives for every state whether stopping (and
serving the best consulted member) beats paying for the next member. The objective is
``lam * loss_of_served + (1 - lam) * normalised_cost``; :func:`lam_from_weight` maps the
configuration's latency weight ``w = (1 - lam) / lam`` to ``lam``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

__all__ = ["ObservedRecords", "ExitPolicy", "SingleMember", "Threshold", "Patience", "IndexModel", "IndexPolicy",
           "MarkovNoRecallPolicy", "solve_index", "solve_no_recall", "replay", "ReplayResult", "lam_from_weight",
           "fit_index_model", "quantile_edges", "IndexSolution"]


def lam_from_weight(weight: float) -> float:
    """The trade-off weight ``lam`` on loss for a latency weight ``w = (1 - lam) / lam`` (``w >= 0``)."""
    return 1.0 / (1.0 + float(weight))


@dataclass(frozen=True)
class ObservedRecords:
    """What a policy may read: per member (rows) and sample (columns) the proxy loss ``u`` (1 − the
    confidence) and the predicted class. No labels, no correctness."""

    u: np.ndarray
    pred: np.ndarray

    def __post_init__(self) -> None:
        if self.u.shape != self.pred.shape or self.u.ndim != 2:
            raise ValueError(f"u and pred must be (members, samples) arrays of one shape, got {self.u.shape} and "
                             f"{self.pred.shape}")

    @property
    def n_samples(self) -> int:
        return int(self.u.shape[1])


class ExitPolicy(Protocol):
    """The observable-only decision rule. ``stop(pos, u_last, best_score, run)``: whether to stop after
    the member at chain position ``pos`` (arrays broadcast); ``score(pos, u)``: the estimated loss the
    policy compares under recall (lower is better; ties keep the earlier member)."""

    recall: bool
    uses_agreement: bool

    def stop(self, pos: int, u_last: np.ndarray, best_score: np.ndarray, run: np.ndarray | None) -> np.ndarray: ...

    def score(self, pos: int, u: np.ndarray) -> np.ndarray: ...


class _ProxyScore:
    def score(self, pos: int, u: np.ndarray) -> np.ndarray:
        return np.asarray(u, dtype=float)


@dataclass(frozen=True)
class SingleMember(_ProxyScore):
    """Serve one member: the policy never stops early (the task consults only the chain's last member)."""

    recall: bool = False
    uses_agreement: bool = False

    def stop(self, pos, u_last, best_score, run):
        return np.zeros(np.broadcast(u_last, best_score).shape, dtype=bool)


@dataclass(frozen=True)
class Threshold(_ProxyScore):
    """Stop at the first member whose confidence ``1 - u`` reaches its threshold (one per chain
    position, the last member always serves). ``recall=True`` serves the most confident consulted
    member instead of the last one."""

    taus: tuple[float, ...]
    recall: bool = False
    uses_agreement: bool = False

    def stop(self, pos, u_last, best_score, run):
        tau = self.taus[pos] if pos < len(self.taus) else 2.0
        return np.broadcast_to(1.0 - np.asarray(u_last) >= tau - 1e-12, np.broadcast(u_last, best_score).shape)


@dataclass(frozen=True)
class Patience(_ProxyScore):
    """PABEE-style patience: stop once the prediction stayed unchanged ``k`` times in a row (the last
    ``k + 1`` consulted members agree); serve the last member."""

    k: int
    recall: bool = False
    uses_agreement: bool = True

    def stop(self, pos, u_last, best_score, run):
        return np.asarray(run) >= self.k + 1


@dataclass(frozen=True)
class IndexModel:
    """The Markov model the index policy plans with, on a chain of ``J`` positions.

    ``edges[j]``: increasing bin edges on the proxy loss ``u`` at position j (``len(edges[j]) + 1`` bins);
    ``loss[j]``: the estimated loss of serving position j for each bin; ``p0``: the first position's
    bin distribution; ``trans[j]`` (j >= 1): the transition matrix from position j−1's bin to j's;
    ``cost[j]``: the normalised incremental cost of consulting position j.
    """

    edges: tuple[np.ndarray, ...]
    loss: tuple[np.ndarray, ...]
    p0: np.ndarray
    trans: tuple[np.ndarray | None, ...]
    cost: np.ndarray

    @property
    def length(self) -> int:
        return len(self.loss)

    def bin_of(self, pos: int, u: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges[pos], np.asarray(u, dtype=float), side="right")


@dataclass(frozen=True)
class IndexSolution:
    """The backward recursion's result: the loss grid, and per decision point j (after position j,
    before j + 1) the stop table ``stop[j][g, b]`` over (best estimated loss index g, last bin b)."""

    grid: np.ndarray
    stop: tuple[np.ndarray, ...]
    value: float
    lam: float

    def index(self, pos: int) -> np.ndarray:
        """The dynamic index per last bin: the largest best-so-far loss at which stopping is optimal
        (−inf where continuing is always better). Well defined because the stop sets are down-sets."""
        table = self.stop[pos]
        out = np.full(table.shape[1], -np.inf)
        for b in range(table.shape[1]):
            idx = np.flatnonzero(table[:, b])
            if idx.size:
                out[b] = self.grid[idx.max()]
        return out


def solve_index(model: IndexModel, lam: float) -> IndexSolution:
    """T-Tamer's backward recursion with recall on a line (exact for the model's Markov chain).

    ``Phi_J(g, b) = lam * G[g]``; for the decision before position j:
    ``cont(g, b) = (1 - lam) c_j + sum_b' T_j[b, b'] Phi_{j+1}(min(g, gi_j[b']), b')`` and
    ``Phi_j = min(lam * G[g], cont)``. Stop where stopping is at least as good as continuing.
    """
    grid = np.unique(np.concatenate([np.asarray(x, dtype=float) for x in model.loss]))
    gi = [np.searchsorted(grid, np.asarray(x, dtype=float)) for x in model.loss]
    J = model.length
    stop_value = lam * grid  # (G,)
    phi = np.repeat(stop_value[:, None], len(model.loss[J - 1]), axis=1)  # after the last position
    stops: list[np.ndarray] = [np.ones_like(phi, dtype=bool)]
    for j in range(J - 1, 0, -1):
        # next[g, b'] = Phi_{j+1}(min(g, gi_j[b']), b')
        g_new = np.minimum(np.arange(len(grid))[:, None], gi[j][None, :])
        nxt = phi[g_new, np.arange(len(gi[j]))[None, :]]
        cont = (1.0 - lam) * model.cost[j] + nxt @ model.trans[j].T  # (G, B_{j-1})
        stop = stop_value[:, None] <= cont + 1e-15
        stops.append(stop)
        phi = np.where(stop, stop_value[:, None], cont)
    stops.reverse()
    value = (1.0 - lam) * model.cost[0] + float(model.p0 @ phi[gi[0], np.arange(len(gi[0]))])
    return IndexSolution(grid=grid, stop=tuple(stops), value=value, lam=lam)


def solve_no_recall(model: IndexModel, lam: float) -> tuple[tuple[np.ndarray, ...], float]:
    """The recall-free Markov-optimal policy (optimal stopping serving the last member): per decision
    point j a stop vector over the last bin, and the optimal value."""
    J = model.length
    psi = lam * np.asarray(model.loss[J - 1], dtype=float)
    stops: list[np.ndarray] = [np.ones_like(psi, dtype=bool)]
    for j in range(J - 1, 0, -1):
        here = lam * np.asarray(model.loss[j - 1], dtype=float)
        cont = (1.0 - lam) * model.cost[j] + model.trans[j] @ psi
        stop = here <= cont + 1e-15
        stops.append(stop)
        psi = np.where(stop, here, cont)
    stops.reverse()
    return tuple(stops), (1.0 - lam) * model.cost[0] + float(model.p0 @ psi)


@dataclass(frozen=True)
class IndexPolicy:
    """The T-Tamer dynamic-index policy: stop when the best estimated loss so far is at or below the
    index of the current state; serve the best consulted member (recall)."""

    model: IndexModel
    solution: IndexSolution
    recall: bool = True
    uses_agreement: bool = False

    @classmethod
    def fit(cls, model: IndexModel, lam: float) -> "IndexPolicy":
        return cls(model, solve_index(model, lam))

    def score(self, pos, u):
        return np.asarray(self.model.loss[pos], dtype=float)[self.model.bin_of(pos, u)]

    def stop(self, pos, u_last, best_score, run):
        g = np.searchsorted(self.solution.grid, np.asarray(best_score, dtype=float))
        g = np.clip(g, 0, len(self.solution.grid) - 1)
        return self.solution.stop[pos][g, self.model.bin_of(pos, u_last)]


@dataclass(frozen=True)
class MarkovNoRecallPolicy:
    """The recall-free Markov-optimal policy for the same model (a reference, isolating recall's value)."""

    model: IndexModel
    stops: tuple[np.ndarray, ...]
    recall: bool = False
    uses_agreement: bool = False

    @classmethod
    def fit(cls, model: IndexModel, lam: float) -> "MarkovNoRecallPolicy":
        return cls(model, solve_no_recall(model, lam)[0])

    def score(self, pos, u):
        return np.asarray(self.model.loss[pos], dtype=float)[self.model.bin_of(pos, u)]

    def stop(self, pos, u_last, best_score, run):
        out = self.stops[pos][self.model.bin_of(pos, u_last)]
        return np.broadcast_to(out, np.broadcast(u_last, best_score).shape)


def quantile_edges(u: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges on ``u`` holding about equal calibration mass per bin (duplicates merged)."""
    if bins <= 1:
        return np.zeros(0)
    qs = np.quantile(np.asarray(u, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def fit_index_model(u: np.ndarray, correct: np.ndarray, cost: Sequence[float], bins: int,
                    smoothing: float = 1.0) -> IndexModel:
    """Fit the index policy's Markov model on a calibration split.

    ``u``, ``correct``: (positions, samples) arrays of the chain's loaded members, every sample
    observed at every position (uncensored, so the transitions are unbiased). Losses are the
    calibration error rates per bin, shrunk toward the member's error rate by ``smoothing``
    pseudo-samples (and kept above 1e-4, T-Tamer assumes positive losses); transitions get add-
    ``smoothing``/B counts.
    """
    u = np.asarray(u, dtype=float)
    wrong = 1.0 - np.asarray(correct, dtype=float)
    J = u.shape[0]
    edges, loss, bin_ids = [], [], []
    for j in range(J):
        e = quantile_edges(u[j], bins)
        b = np.searchsorted(e, u[j], side="right")
        nb = len(e) + 1
        count = np.bincount(b, minlength=nb).astype(float)
        errs = np.bincount(b, weights=wrong[j], minlength=nb)
        prior = wrong[j].mean()
        loss.append(np.maximum((errs + smoothing * prior) / (count + smoothing), 1e-4))
        edges.append(e)
        bin_ids.append(b)
    p0 = np.bincount(bin_ids[0], minlength=len(edges[0]) + 1).astype(float)
    p0 /= p0.sum()
    trans: list[np.ndarray | None] = [None]
    for j in range(1, J):
        na, nb = len(edges[j - 1]) + 1, len(edges[j]) + 1
        counts = np.full((na, nb), smoothing / nb)
        np.add.at(counts, (bin_ids[j - 1], bin_ids[j]), 1.0)
        trans.append(counts / counts.sum(axis=1, keepdims=True))
    return IndexModel(edges=tuple(edges), loss=tuple(loss), p0=p0, trans=tuple(trans),
                      cost=np.asarray(cost, dtype=float))


@dataclass(frozen=True)
class ReplayResult:
    """Per sample: the chain position served and the number of positions consulted."""

    served: np.ndarray
    consulted: np.ndarray


def replay(policy: ExitPolicy, observed: ObservedRecords) -> ReplayResult:
    """Run ``policy`` on every sample of ``observed`` (rows = the chain's positions, in order).

    Only the masked view reaches the policy; scoring (which needs correctness) happens outside.
    """
    if not isinstance(observed, ObservedRecords):
        raise TypeError(f"policies read an ObservedRecords view, got {type(observed).__name__}")
    J, n = observed.u.shape
    done = np.zeros(n, dtype=bool)
    served = np.zeros(n, dtype=int)
    consulted = np.zeros(n, dtype=int)
    best_score = np.full(n, np.inf)
    best_pos = np.zeros(n, dtype=int)
    run = np.zeros(n, dtype=int)
    for j in range(J):
        live = ~done
        u = observed.u[j]
        s = policy.score(j, u)
        better = s < best_score
        best_score = np.where(better, s, best_score)
        best_pos = np.where(better, j, best_pos)
        if j == 0:
            run = np.ones(n, dtype=int)
        else:
            run = np.where(observed.pred[j] == observed.pred[j - 1], run + 1, 1)
        stop = np.ones(n, dtype=bool) if j == J - 1 else np.asarray(policy.stop(j, u, best_score, run), dtype=bool)
        now = live & stop
        served[now] = best_pos[now] if policy.recall else j
        consulted[now] = j + 1
        done |= now
    return ReplayResult(served=served, consulted=consulted)

