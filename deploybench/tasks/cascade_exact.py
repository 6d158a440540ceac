"""Exact synthetic cascade instances: seeded stage-loss chains with calibrated proxies.

Each member (stage) of a cascade emits an observable proxy level; level ``k`` of stage ``i`` has the
proxy loss ``u = values_i[k]`` (so the confidence is ``1 - u``) and the proxy is **calibrated by
construction**: the member is correct with probability ``1 - u``, independently of everything else
given its level. Levels form a Markov chain along each root-to-leaf path (first-level distribution
``p_root``, a transition matrix per edge), the loss model of T-Tamer (arXiv 2509.22992, ICLR 2026).
Predictions: a correct member predicts the label; a wrong one predicts the input's *confuser* class
(one wrong class per input) with probability ``confusion``, else a uniformly drawn other wrong class
out of ``n_classes`` (errors of different members on hard inputs look alike, as in real cascades).

Because every quantity is a finite Markov chain, the expected accuracy and the per-sample latency
distribution of any exit policy are computed **exactly** by a forward recursion (no sampling noise),
which gives the cascade tasks exact known optima. :func:`monte_carlo` draws uncensored per-sample
records from the same model, so tests can check the recursion against simulation.

Instances (:func:`instances`): ``line`` (4 members), ``overthink`` (the deepest member gets worse on
a sizeable share of inputs), ``skip`` (a costly, barely informative middle member that the best
chains skip: the transitive-closure case), ``tree`` (a router sending each input to one of two
specialist branches), and ``trap`` (the necessity-of-recall construction: every recall-free policy
is ``alpha`` times worse in error than serving the better of the two members).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from .cascade_policies import ExitPolicy, IndexModel, ObservedRecords, Patience, replay

__all__ = ["Stage", "CascadeInstance", "Branch", "ExactResult", "instances", "get_instance", "exact_evaluate",
           "exact_index_model", "monte_carlo", "simulate", "prophet", "line_chains", "TRAP_ALPHA"]

TRAP_ALPHA = 10.0


@dataclass(frozen=True)
class Stage:
    """One member: per-level proxy loss (= error probability), incremental latency, memory, and a
    non-empty ``unsupported`` reason when the target runtime cannot execute it."""

    name: str
    values: np.ndarray
    latency_ms: float
    memory_mb: float
    unsupported: str = ""


@dataclass(frozen=True)
class Branch:
    """A root-to-leaf path: stage indices, and ``weight`` = the share of inputs routed to it."""

    path: tuple[int, ...]
    weight: float


@dataclass(frozen=True)
class CascadeInstance:
    """A tree of stages. ``parent[i]`` is the stage before ``i`` (−1 for the root); ``trans[i]`` is the
    level transition matrix from ``parent[i]`` to ``i``; ``chains`` names the loadable member sets:
    per branch, the chain of stages consulted in order (a subsequence of the branch path)."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    parent: tuple[int, ...]
    p_root: np.ndarray
    trans: tuple[np.ndarray | None, ...]
    branches: tuple[Branch, ...]
    chains: Mapping[str, tuple[tuple[int, ...], ...]]
    n_classes: int = 10
    confusion: float = 0.85
    full_chain: str = ""
    notes: Mapping[str, float] = field(default_factory=dict)

    def members(self, chain: str) -> tuple[int, ...]:
        """Every stage the chain loads (all branches), sorted."""
        return tuple(sorted({s for per_branch in self.chains[chain] for s in per_branch}))

    def marginal(self, stage: int) -> np.ndarray:
        path = self._path_to(stage)
        d = self.p_root
        for s in path[1:]:
            d = d @ self.trans[s]
        return d

    def _path_to(self, stage: int) -> list[int]:
        path = [stage]
        while self.parent[path[-1]] >= 0:
            path.append(self.parent[path[-1]])
        return path[::-1]

    def chain_model(self, branch: int, chain: str) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """For one branch of a chain: the first member's level distribution, the transition matrix into
        each later member (skipped stages marginalised out: the Markov chain restricted to the loaded
        members is again Markov), and each member's per-level loss values."""
        members = self.chains[chain][branch]
        path = self.branches[branch].path
        d0 = self.marginal(members[0])
        trans: list[np.ndarray] = [np.eye(len(d0))]
        for a, b in zip(members, members[1:]):
            t = np.eye(len(self.stages[a].values))
            for s in path[path.index(a) + 1: path.index(b) + 1]:
                t = t @ self.trans[s]
            trans.append(t)
        return d0, trans, [np.asarray(self.stages[m].values, dtype=float) for m in members]


@dataclass(frozen=True)
class ExactResult:
    """Exact expectations of one policy on one chain: accuracy, and the per-sample latency as a
    discrete distribution (values in ms with their probabilities)."""

    accuracy: float
    latency_values: np.ndarray
    latency_probs: np.ndarray

    @property
    def mean_latency(self) -> float:
        return float(self.latency_values @ self.latency_probs)

    def latency_quantile(self, q: float) -> float:
        """The smallest latency ``x`` with ``P(latency <= x) >= q`` (the discrete distribution's quantile)."""
        order = np.argsort(self.latency_values)
        cum = np.cumsum(self.latency_probs[order])
        i = int(np.searchsorted(cum, q - 1e-12))
        return float(self.latency_values[order][min(i, len(order) - 1)])


def _exact_line_levels(policy: ExitPolicy, d0, trans, values) -> tuple[float, np.ndarray]:
    """Forward recursion over (last level, best consulted (position, level)): exact error and the
    distribution of the number of consulted members."""
    J = len(values)
    sizes = [len(v) for v in values]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    score_b = np.concatenate([np.asarray(policy.score(j, values[j]), dtype=float) for j in range(J)])
    true_b = np.concatenate(values)
    prob = np.zeros((sizes[0], offs[-1]))
    prob[np.arange(sizes[0]), offs[0] + np.arange(sizes[0])] = d0
    err = 0.0
    stop_p = np.zeros(J)
    for j in range(J):
        if j == J - 1:
            stopped = prob
        else:
            mask = np.broadcast_to(policy.stop(j, values[j][:, None], score_b[None, :], None), prob.shape)
            stopped = prob * mask
        stop_p[j] = stopped.sum()
        if policy.recall:
            err += float(stopped.sum(axis=0) @ true_b)
        else:
            err += float(stopped.sum(axis=1) @ values[j])
        if j == J - 1:
            break
        cont = prob - stopped
        moved = trans[j + 1].T @ cont  # (V_{j+1}, B)
        new_score = score_b[offs[j + 1]: offs[j + 2]]
        keep = score_b[None, :] <= new_score[:, None]
        prob = moved * keep
        prob[np.arange(sizes[j + 1]), offs[j + 1] + np.arange(sizes[j + 1])] += (moved * ~keep).sum(axis=1)
    return err, stop_p


def _exact_line_patience(policy: Patience, d0, trans, values, n_classes: int, confusion: float
                         ) -> tuple[float, np.ndarray]:
    """Forward recursion over (last level, agreement run length, what the run predicts: the label,
    the input's confuser class, or another wrong class)."""
    J = len(values)
    R = policy.k + 1  # run lengths 1..R (capped: stopping happens at R)
    RIGHT, CONFUSER, OTHER = 0, 1, 2
    prob = np.zeros((len(d0), R + 1, 3))
    prob[:, 1, RIGHT] = d0 * (1 - values[0])
    prob[:, 1, CONFUSER] = d0 * values[0] * confusion
    prob[:, 1, OTHER] = d0 * values[0] * (1 - confusion)
    acc = 0.0
    stop_p = np.zeros(J)
    same_other = 1.0 / (n_classes - 2) if n_classes > 2 else 0.0
    for j in range(J):
        stopped = prob.copy() if j == J - 1 else prob * (np.arange(R + 1) >= R)[None, :, None]
        stop_p[j] = stopped.sum()
        acc += float(stopped[:, :, RIGHT].sum())
        if j == J - 1:
            break
        moved = np.einsum("kl,krf->lrf", trans[j + 1], prob - stopped)
        v = values[j + 1]
        # probability that the next member predicts: the label, the confuser, a given other wrong class
        p_new = {RIGHT: 1 - v, CONFUSER: v * confusion, OTHER: v * (1 - confusion)}
        new = np.zeros((len(v), R + 1, 3))
        for r in range(1, R + 1):
            up = min(r + 1, R)
            for f in (RIGHT, CONFUSER, OTHER):
                mass = moved[:, r, f]
                if f == OTHER:  # agreeing means the same other wrong class
                    agree = p_new[OTHER] * same_other
                    new[:, up, OTHER] += mass * agree
                    new[:, 1, OTHER] += mass * (p_new[OTHER] - agree)
                    new[:, 1, RIGHT] += mass * p_new[RIGHT]
                    new[:, 1, CONFUSER] += mass * p_new[CONFUSER]
                else:
                    for g in (RIGHT, CONFUSER, OTHER):
                        new[:, up if g == f else 1, g] += mass * p_new[g]
        prob = new
    return 1.0 - acc, stop_p


def exact_evaluate(instance: CascadeInstance, chain: str, policies: Sequence[ExitPolicy] | ExitPolicy,
                   *, single: bool = False) -> ExactResult:
    """The exact accuracy and per-sample latency distribution of a policy on a chain.

    ``policies``: one policy for every branch, or one per branch (index policies are fitted per
    branch). ``single``: only the chain's last member runs (the single-model baseline).
    """
    per_branch = list(policies) if isinstance(policies, (list, tuple)) else [policies] * len(instance.branches)
    acc = 0.0
    lat_values: list[float] = []
    lat_probs: list[float] = []
    for bi, branch in enumerate(instance.branches):
        members = instance.chains[chain][bi]
        d0, trans, values = instance.chain_model(bi, chain)
        lat = np.array([instance.stages[m].latency_ms for m in members])
        if single:
            last_d = instance.marginal(members[-1])
            acc += branch.weight * float(1.0 - last_d @ values[-1])
            lat_values.append(float(lat[-1]))
            lat_probs.append(branch.weight)
            continue
        policy = per_branch[bi]
        if getattr(policy, "uses_agreement", False):
            err, stop_p = _exact_line_patience(policy, d0, trans, values, instance.n_classes, instance.confusion)
        else:
            err, stop_p = _exact_line_levels(policy, d0, trans, values)
        acc += branch.weight * (1.0 - err)
        lat_values += list(np.cumsum(lat))
        lat_probs += list(branch.weight * stop_p)
    return ExactResult(accuracy=float(acc), latency_values=np.asarray(lat_values), latency_probs=np.asarray(lat_probs))


def _group_levels(d: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """Group adjacent levels into at most ``bins`` groups of about equal probability mass."""
    if bins >= len(values):
        return np.arange(len(values))
    mid = np.cumsum(d) - d / 2
    raw = np.minimum((mid * bins).astype(int), bins - 1)
    return np.unique(raw, return_inverse=True)[1].reshape(-1)


def exact_index_model(instance: CascadeInstance, branch: int, chain: str, bins: int) -> IndexModel:
    """The index policy's model fitted on an infinite calibration split: the exact bin marginals and
    transitions of the chain, levels grouped into ``bins`` bins of about equal mass (with at least as
    many bins as levels it is the true model, and the index policy is exactly optimal)."""
    d0, trans, values = instance.chain_model(branch, chain)
    members = instance.chains[chain][branch]
    dists = [d0]
    for t in trans[1:]:
        dists.append(dists[-1] @ t)
    groups = [_group_levels(d, v, bins) for d, v in zip(dists, values)]
    edges, loss = [], []
    for g, v, d in zip(groups, values, dists):
        ng = int(g.max()) + 1
        cuts = [0.5 * (v[np.flatnonzero(g == k)].max() + v[np.flatnonzero(g == k + 1)].min()) for k in range(ng - 1)]
        edges.append(np.asarray(cuts, dtype=float))
        mass = np.bincount(g, weights=d, minlength=ng)
        loss.append(np.bincount(g, weights=d * v, minlength=ng) / np.maximum(mass, 1e-300))
    onehot = [np.eye(int(g.max()) + 1)[g] for g in groups]
    p0 = d0 @ onehot[0]
    coarse: list[np.ndarray | None] = [None]
    for j in range(1, len(values)):
        joint = onehot[j - 1].T @ (dists[j - 1][:, None] * trans[j]) @ onehot[j]
        rows = joint.sum(axis=1, keepdims=True)
        coarse.append(np.where(rows > 0, joint / np.maximum(rows, 1e-300), 1.0 / joint.shape[1]))
    lat = np.array([instance.stages[m].latency_ms for m in members])
    return IndexModel(edges=tuple(edges), loss=tuple(loss), p0=p0, trans=tuple(coarse), cost=lat / lat.sum())


def monte_carlo(instance: CascadeInstance, branch: int, chain: str, n: int, seed: int
                ) -> tuple[ObservedRecords, np.ndarray]:
    """Draw ``n`` uncensored per-sample records of one branch's chain: the observable view (proxy
    loss and prediction of every member) and, apart, the correctness matrix (for scoring only)."""
    rng = np.random.default_rng(seed)
    d0, trans, values = instance.chain_model(branch, chain)
    levels = [rng.choice(len(d0), size=n, p=d0)]
    for t in trans[1:]:
        cum = np.cumsum(t[levels[-1]], axis=1)
        draw = rng.random(n)[:, None]
        levels.append(np.minimum((draw > cum).sum(axis=1), t.shape[1] - 1))
    u = np.vstack([v[lv] for v, lv in zip(values, levels)])
    correct = rng.random(u.shape) >= u
    C = instance.n_classes
    label = rng.integers(0, C, size=n)
    confuser = (label + rng.integers(1, C, size=n)) % C
    # another wrong class: skip over the label and the confuser
    other = (confuser[None, :] + rng.integers(1, C - 1, size=u.shape)) % C
    other = np.where(other == label[None, :], (other + 1) % C, other)
    other = np.where(other == confuser[None, :], (other + 1) % C, other)
    wrong = np.where(rng.random(u.shape) < instance.confusion, confuser[None, :], other)
    pred = np.where(correct, label[None, :], wrong)
    return ObservedRecords(u=u, pred=pred), correct


def simulate(policy: ExitPolicy, instance: CascadeInstance, branch: int, chain: str, n: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo per-sample correctness and latency of a policy on one branch (for checking)."""
    observed, correct = monte_carlo(instance, branch, chain, n, seed)
    result = replay(policy, observed)
    members = instance.chains[chain][branch]
    cum = np.cumsum([instance.stages[m].latency_ms for m in members])
    return correct[result.served, np.arange(n)], cum[result.consulted - 1]


def prophet(instance: CascadeInstance, chain: str) -> tuple[float, float]:
    """The clairvoyant bound on a chain: accuracy when any correct consulted member could be served
    (``1 - E[prod of member errors]``), and the mean latency of stopping at the first correct member."""
    acc = 0.0
    lat = 0.0
    for bi, branch in enumerate(instance.branches):
        d0, trans, values = instance.chain_model(bi, chain)
        members = instance.chains[chain][bi]
        cum = np.cumsum([instance.stages[m].latency_ms for m in members])
        none_yet = d0 * values[0]  # P(all wrong so far, level)
        lat_b = cum[0]
        for j in range(1, len(values)):
            lat_b += none_yet.sum() * (cum[j] - cum[j - 1])
            none_yet = (none_yet @ trans[j]) * values[j]
        acc += branch.weight * (1.0 - none_yet.sum())
        lat += branch.weight * lat_b
    return float(acc), float(lat)


# -- the instances -------------------------------------------------------------------------------
LEVELS = 16
LEVEL_VALUES = np.linspace(0.02, 0.62, LEVELS)


def _kernel(shift: float, sd: float, n: int = LEVELS) -> np.ndarray:
    k = np.arange(n)
    w = np.exp(-0.5 * ((k[None, :] - (k[:, None] + shift)) / sd) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def _start(centre: float, sd: float, n: int = LEVELS) -> np.ndarray:
    w = np.exp(-0.5 * ((np.arange(n) - centre) / sd) ** 2)
    return w / w.sum()


def line_chains(names: Sequence[str]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Every non-empty ordered subset of the stages, named ``m1>m3>m4`` (one branch)."""
    n = len(names)
    out = {}
    for mask in range(1, 2 ** n):
        idx = tuple(i for i in range(n) if mask >> i & 1)
        out[">".join(names[i] for i in idx)] = (idx,)
    return out


def _line(name: str, description: str, stages: list[Stage], p_root: np.ndarray, trans: list[np.ndarray]
          ) -> CascadeInstance:
    n = len(stages)
    chains = line_chains([s.name for s in stages])
    return CascadeInstance(name=name, description=description, stages=tuple(stages),
                           parent=tuple(range(-1, n - 1)), p_root=p_root, trans=(None, *trans),
                           branches=(Branch(tuple(range(n)), 1.0),), chains=chains,
                           full_chain=">".join(s.name for s in stages))


def _jitter(rng: np.random.Generator, x: float, rel: float = 0.15) -> float:
    return float(x * (1 + rel * rng.uniform(-1, 1)))


def _line_instance(seed: int) -> CascadeInstance:
    rng = np.random.default_rng(seed)
    v = LEVEL_VALUES
    stages = [Stage("m1", v, 1.0, 40.0), Stage("m2", v, 3.0, 120.0), Stage("m3", v, 8.0, 350.0),
              Stage("m4", v, 20.0, 900.0)]
    trans = [_kernel(-_jitter(rng, 3.0), _jitter(rng, 2.0)), _kernel(-_jitter(rng, 2.5), _jitter(rng, 2.0)),
             _kernel(-_jitter(rng, 2.0), _jitter(rng, 1.5))]
    return _line("line", "four members of growing cost, each better on average than the one before",
                 stages, _start(10.0, 3.0), trans)


def _overthink_instance(seed: int) -> CascadeInstance:
    rng = np.random.default_rng(seed)
    v = LEVEL_VALUES
    stages = [Stage("m1", v, 1.0, 40.0), Stage("m2", v, 3.0, 120.0), Stage("m3", v, 8.0, 350.0),
              Stage("m4", v, 20.0, 900.0)]
    worse = 0.3
    # the deepest member is much better on most inputs and much worse on the rest (bimodal transition)
    last = (1 - worse) * _kernel(-6.0, 1.5) + worse * _kernel(8.0, 2.0)
    trans = [_kernel(-_jitter(rng, 3.0, 0.05), 2.0), _kernel(-_jitter(rng, 2.0, 0.05), 2.0), last]
    return _line("overthink", f"like line, but the deepest member over-thinks: much better on most inputs, on "
                 f"{worse:.0%} of them its loss jumps up, so serving the best member consulted so far beats "
                 "serving the last", stages, _start(10.0, 3.0), trans)


def _skip_instance(seed: int) -> CascadeInstance:
    rng = np.random.default_rng(seed)
    v = LEVEL_VALUES
    stages = [Stage("m1", v, 1.0, 40.0), Stage("m2", v, 9.0, 400.0), Stage("m3", v, 6.0, 300.0),
              Stage("m4", v, 18.0, 800.0), Stage("m5", v, 30.0, 1400.0)]
    trans = [_kernel(-_jitter(rng, 0.5), _jitter(rng, 2.5)), _kernel(-_jitter(rng, 4.0), _jitter(rng, 2.0)),
             _kernel(-_jitter(rng, 2.0), _jitter(rng, 1.5)), _kernel(-_jitter(rng, 1.5), _jitter(rng, 1.5))]
    return _line("skip", "five members; the second is costly and barely informative, so the best chains skip it "
                 "(consult m1 then jump to m3: the transitive closure of the line)", stages, _start(10.0, 3.0), trans)


def _tree_instance(seed: int) -> CascadeInstance:
    rng = np.random.default_rng(seed)
    v = LEVEL_VALUES
    stages = (
        Stage("router", v, 1.5, 60.0),
        Stage("spec_a", v, 5.0, 200.0), Stage("expert_a", v, 16.0, 700.0),
        Stage("spec_b", v, 5.0, 200.0),
        Stage("expert_b", v, 16.0, 700.0,
              unsupported="expert_b uses an attention operator the target runtime does not implement"),
    )
    parent = (-1, 0, 1, 0, 3)
    trans = (None, _kernel(-_jitter(rng, 4.0), _jitter(rng, 2.0)), _kernel(-_jitter(rng, 2.5), _jitter(rng, 1.5)),
             _kernel(-_jitter(rng, 3.0), _jitter(rng, 2.5)), _kernel(-_jitter(rng, 3.0), _jitter(rng, 1.5)))
    branches = (Branch((0, 1, 2), 0.6), Branch((0, 3, 4), 0.4))
    chains = {
        "router": ((0,), (0,)),
        "router>spec": ((0, 1), (0, 3)),
        "router>spec>expert": ((0, 1, 2), (0, 3, 4)),
        "router>expert": ((0, 2), (0, 4)),
        "router>spec>expert_a": ((0, 1, 2), (0, 3)),
    }
    return CascadeInstance(name="tree", description="a router answers or routes each input to one of two specialist "
                           "branches (60 % / 40 %), each a specialist then an expert; expert_b cannot run on the "
                           "target (unsupported)", stages=stages, parent=parent, p_root=_start(11.0, 2.5),
                           trans=trans, branches=branches, chains=chains, full_chain="router>spec>expert_a")


def _trap_instance(alpha: float = TRAP_ALPHA) -> CascadeInstance:
    stages = [Stage("m1", np.array([1.0 / alpha**2]), 1.0, 40.0),
              Stage("m2", np.array([0.0, 1.0 / alpha]), 1.0, 40.0)]
    trans = [np.array([[1.0 - 1.0 / alpha, 1.0 / alpha]])]
    inst = _line("trap", f"the necessity-of-recall construction with alpha = {alpha:g}: m1 always errs with "
                 f"probability 1/alpha^2, m2 is perfect except on 1/alpha of inputs, where it errs with probability "
                 f"1/alpha; every recall-free policy errs 1/alpha^2, serving the better of the two errs 1/alpha^3",
                 stages, np.array([1.0]), trans)
    return CascadeInstance(**{**inst.__dict__, "notes": {"alpha": alpha}})


@lru_cache(maxsize=None)
def instances(seed: int = 17) -> dict[str, CascadeInstance]:
    """The exact instances, generated from ``seed`` (the task family uses seed 17)."""
    return {
        "line": _line_instance(seed),
        "overthink": _overthink_instance(seed + 1),
        "skip": _skip_instance(seed + 2),
        "tree": _tree_instance(seed + 3),
        "trap": _trap_instance(),
    }


def get_instance(name: str, seed: int = 17) -> CascadeInstance:
    insts = instances(seed)
    if name not in insts:
        raise KeyError(f"unknown cascade instance {name!r}; known: {', '.join(insts)}")
    return insts[name]
