"""Recorded cascade instances: a small early-exit network and a cascade of scikit-learn classifiers.

Everything is made here on the CPU from data that ships with scikit-learn (``load_digits``) or is
generated (``make_classification``); nothing is downloaded. For every sample and **every** member
(uncensored: a policy fitted on records that a deployed threshold policy truncated would be biased)
the records hold the confidence (max softmax probability), the predicted class and, apart, whether
it was correct. Splits are fixed and stratified: ``train`` (fits the models), ``calib`` (fits the
index policy), ``val`` (what the optimizer's objective is computed on) and ``test`` (held back,
reported as ``test_*`` metrics).

Latency: each member's incremental cost is timed in-process at batch size 1 with a monotonic clock
(``time.perf_counter_ns``) after a warm-up, median of repeated calls. For the early-exit network the
member cost is split into its backbone block and its exit head (reaching exit j runs every block up
to j, and the heads of the loaded exits consulted on the way). For scikit-learn models single-row
``predict_proba`` is dominated by Python overhead, so their cost is the median time of a batch of
256 rows divided by 256, labelled as such. These are honest timings of this machine, not the live
profiler's worker measurements. Regenerate with ``python -m deploybench.tasks.cascade_records``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .cascade_exact import ExactResult, line_chains
from .cascade_scenarios import RECORDS
from .cascade_policies import ObservedRecords, fit_index_model, replay

__all__ = ["SPLITS", "Records", "train_early_exit", "record_early_exit", "record_sklearn_cascade", "RecordSource",
           "load_records", "RECORDS", "markov_violation_bits"]

SPLITS = ("train", "calib", "val", "test")


@dataclass(frozen=True)
class Records:
    """Per-member (rows) and per-sample (columns) outputs with fixed split ids."""

    name: str
    members: tuple[str, ...]
    conf: np.ndarray
    pred: np.ndarray
    correct: np.ndarray
    split: np.ndarray  # per sample: index into SPLITS
    block_ms: np.ndarray  # per member: backbone cost to reach it from the previous member (0 for independent models)
    head_ms: np.ndarray  # per member: cost of its own head / model
    param_kb: np.ndarray  # per member: memory of its block and head (kB, float32 parameters or pickled model)
    shared_backbone: bool
    meta: Mapping[str, Any]

    def ids(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == SPLITS.index(split))

    def observed(self, rows: Sequence[int], cols: np.ndarray) -> ObservedRecords:
        """The masked view a policy may read: proxy loss and prediction only."""
        return ObservedRecords(u=1.0 - self.conf[np.ix_(rows, cols)], pred=self.pred[np.ix_(rows, cols)])

    def save(self, path: Path) -> None:
        np.savez_compressed(path, conf=self.conf.astype(np.float32), pred=self.pred.astype(np.int16),
                            correct=self.correct.astype(bool), split=self.split.astype(np.int8),
                            block_ms=self.block_ms, head_ms=self.head_ms, param_kb=self.param_kb,
                            header=json.dumps({"name": self.name, "members": list(self.members),
                                               "shared_backbone": self.shared_backbone, "meta": dict(self.meta)}))


def load_records(name: str, path: Path | None = None) -> Records:
    if path is None:
        handle = resources.files("deploybench.tasks").joinpath(RECORDS[name])
        with resources.as_file(handle) as p:
            return _read(p)
    return _read(path)


@lru_cache(maxsize=8)
def _read(path: Path) -> Records:
    with np.load(path) as z:
        header = json.loads(str(z["header"]))
        return Records(name=header["name"], members=tuple(header["members"]), conf=z["conf"].astype(float),
                       pred=z["pred"].astype(int), correct=z["correct"].astype(bool), split=z["split"].astype(int),
                       block_ms=z["block_ms"], head_ms=z["head_ms"], param_kb=z["param_kb"],
                       shared_backbone=bool(header["shared_backbone"]), meta=header["meta"])


def fixed_splits(y: np.ndarray, seed: int, fractions: Sequence[float] = (0.5, 0.15, 0.15, 0.2)) -> np.ndarray:
    """Stratified, seeded, disjoint split ids (one per sample)."""
    rng = np.random.default_rng(seed)
    split = np.empty(len(y), dtype=int)
    bounds = np.cumsum(fractions)[:-1]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        cuts = np.round(bounds * len(idx)).astype(int)
        for s, part in enumerate(np.split(idx, cuts)):
            split[part] = s
    return split


# -- the early-exit network (numpy, trained here) --------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_early_exit(X: np.ndarray, y: np.ndarray, *, width: int, blocks: int, epochs: int, seed: int,
                     lr: float = 3e-3, batch: int = 64) -> list[dict[str, np.ndarray]]:
    """A ReLU MLP with a softmax exit head after every block, trained jointly (mean of the exits'
    cross-entropies) with Adam. Returns per block ``{W, b, V, c}`` (block weights, head weights)."""
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    params = []
    fan_in = X.shape[1]
    for _ in range(blocks):
        params.append({"W": rng.normal(0, np.sqrt(2.0 / fan_in), (fan_in, width)), "b": np.zeros(width),
                       "V": rng.normal(0, np.sqrt(1.0 / width), (width, n_classes)), "c": np.zeros(n_classes)})
        fan_in = width
    m = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]
    s = [{k: np.zeros_like(v) for k, v in p.items()} for p in params]
    onehot = np.eye(n_classes)[y]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            h, cache = X[idx], []
            for p in params:
                a = h @ p["W"] + p["b"]
                hn = np.maximum(a, 0.0)
                cache.append((h, a, hn, _softmax(hn @ p["V"] + p["c"])))
                h = hn
            grads = [dict() for _ in params]
            back = np.zeros_like(h)
            for i in range(len(params) - 1, -1, -1):
                h_in, a, hn, prob = cache[i]
                dz = (prob - onehot[idx]) / (len(idx) * len(params))
                grads[i]["V"], grads[i]["c"] = hn.T @ dz, dz.sum(axis=0)
                dh = dz @ params[i]["V"].T + back
                da = dh * (a > 0)
                grads[i]["W"], grads[i]["b"] = h_in.T @ da, da.sum(axis=0)
                back = da @ params[i]["W"].T
            step += 1
            for p, g, mi, si in zip(params, grads, m, s):
                for k in p:
                    mi[k] = 0.9 * mi[k] + 0.1 * g[k]
                    si[k] = 0.999 * si[k] + 0.001 * g[k] ** 2
                    p[k] -= lr * (mi[k] / (1 - 0.9 ** step)) / (np.sqrt(si[k] / (1 - 0.999 ** step)) + 1e-8)
    return params


def _time_ms(fn: Callable[[], Any], *, warmup: int = 30, repeats: int = 200) -> float:
    """Median wall time of ``fn`` in ms (monotonic clock, after warm-up)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def record_early_exit(name: str, X: np.ndarray, y: np.ndarray, *, width: int, blocks: int, epochs: int,
                      seed: int, description: str) -> Records:
    split = fixed_splits(y, seed)
    mu, sd = X[split == 0].mean(axis=0), X[split == 0].std(axis=0) + 1e-6
    Xs = (X - mu) / sd
    params = train_early_exit(Xs[split == 0], y[split == 0], width=width, blocks=blocks, epochs=epochs, seed=seed)
    conf, pred = [], []
    h = Xs
    for p in params:
        h = np.maximum(h @ p["W"] + p["b"], 0.0)
        prob = _softmax(h @ p["V"] + p["c"])
        conf.append(prob.max(axis=1))
        pred.append(prob.argmax(axis=1))
    conf, pred = np.vstack(conf), np.vstack(pred)
    block_ms, head_ms = [], []
    x1 = Xs[:1]
    h = x1
    for p in params:
        hin = h
        block_ms.append(_time_ms(lambda: np.maximum(hin @ p["W"] + p["b"], 0.0)))
        h = np.maximum(hin @ p["W"] + p["b"], 0.0)
        hh = h
        head_ms.append(_time_ms(lambda: _softmax(hh @ p["V"] + p["c"])))
    param_kb = np.array([4.0 * (p["W"].size + p["b"].size + p["V"].size + p["c"].size) / 1024 for p in params])
    return Records(name=name, members=tuple(f"exit{i + 1}" for i in range(blocks)), conf=conf, pred=pred,
                   correct=pred == y[None, :], split=split, block_ms=np.array(block_ms), head_ms=np.array(head_ms),
                   param_kb=param_kb, shared_backbone=True,
                   meta={"description": description, "seed": seed, "width": width, "epochs": epochs,
                         "latency": "in-process batch-1 median per block and head (time.perf_counter_ns, warm-up 30, "
                                    "200 repeats), this machine's CPU", "n_samples": int(len(y))})


def record_sklearn_cascade(X: np.ndarray, y: np.ndarray, *, seed: int, description: str) -> Records:
    """LogisticRegression, a small MLP, a random forest, gradient boosting and an RBF SVM, ordered by
    measured per-sample cost."""
    import pickle

    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    split = fixed_splits(y, seed)
    tr = split == 0
    models = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "mlp": make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=300, random_state=seed)),
        "forest": RandomForestClassifier(n_estimators=60, max_depth=12, random_state=seed, n_jobs=1),
        "boosting": HistGradientBoostingClassifier(max_iter=60, random_state=seed),
        "svm": make_pipeline(StandardScaler(), SVC(C=3.0, probability=True, random_state=seed)),
    }
    rows = []
    for name, model in models.items():
        model.fit(X[tr], y[tr])
        prob = model.predict_proba(X)
        batch = X[:256]
        ms = _time_ms(lambda: model.predict_proba(batch), warmup=3, repeats=15) / len(batch)
        rows.append((ms, name, prob.max(axis=1), prob.argmax(axis=1), len(pickle.dumps(model)) / 1024))
    rows.sort(key=lambda r: r[0])
    return Records(name="sklearn", members=tuple(r[1] for r in rows), conf=np.vstack([r[2] for r in rows]),
                   pred=np.vstack([r[3] for r in rows]),
                   correct=np.vstack([r[3] for r in rows]) == y[None, :], split=split,
                   block_ms=np.zeros(len(rows)), head_ms=np.array([r[0] for r in rows]),
                   param_kb=np.array([r[4] for r in rows]), shared_backbone=False,
                   meta={"description": description, "seed": seed, "n_samples": int(len(y)),
                         "latency": "per-sample cost = median time of predict_proba on 256 rows / 256 "
                                    "(time.perf_counter_ns, warm-up 3, 15 repeats), this machine's CPU; members "
                                    "ordered by it"})


def make_all(out_dir: Path) -> None:
    from sklearn.datasets import load_digits, make_classification

    digits = load_digits()
    record_early_exit("digits_ee", digits.data, digits.target, width=96, blocks=4, epochs=40, seed=17,
                      description="early-exit MLP (4 blocks of 96, an exit after each) on scikit-learn's bundled "
                                  "digits (1,797 8x8 images)").save(out_dir / RECORDS["digits_ee"])
    X, y = make_classification(n_samples=12000, n_features=40, n_informative=16, n_redundant=8, n_classes=6,
                               n_clusters_per_class=2, class_sep=1.0, flip_y=0.03, random_state=17)
    record_early_exit("synth_ee", X, y, width=128, blocks=4, epochs=12, seed=17,
                      description="early-exit MLP (4 blocks of 128) on make_classification data (12,000 samples, "
                                  "40 features, 6 classes, 3 % label noise)").save(out_dir / RECORDS["synth_ee"])
    X, y = make_classification(n_samples=6000, n_features=30, n_informative=14, n_redundant=6, n_classes=5,
                               n_clusters_per_class=2, class_sep=0.9, flip_y=0.03, random_state=18)
    record_sklearn_cascade(X, y, seed=18, description="five scikit-learn classifiers on make_classification data "
                           "(6,000 samples, 30 features, 5 classes)").save(out_dir / RECORDS["sklearn"])


def markov_violation_bits(u: np.ndarray, bins: int = 8) -> list[float]:
    """Per interior member i of a chain: the conditional mutual information I(B_{i-1}; B_{i+1} | B_i)
    of the members' proxy-loss bins (calibration quantiles), in bits. Zero when the bins form a Markov
    chain, the assumption T-Tamer's index policy plans with; the plug-in estimate is biased upward on
    small samples, so compare instances of similar size."""
    from .cascade_policies import quantile_edges

    b = np.vstack([np.searchsorted(quantile_edges(row, bins), row, side="right") for row in np.asarray(u)])
    out = []
    for i in range(1, b.shape[0] - 1):
        joint = np.zeros((bins + 1,) * 3)
        np.add.at(joint, (b[i - 1], b[i], b[i + 1]), 1.0)
        joint /= joint.sum()
        p_mid = joint.sum(axis=(0, 2))
        p_prev_mid = joint.sum(axis=2)
        p_mid_next = joint.sum(axis=0)
        nz = joint > 0
        ratio = (joint * p_mid[None, :, None]) / (p_prev_mid[:, :, None] * p_mid_next[None, :, :] + 1e-300)
        out.append(float((joint[nz] * np.log2(ratio[nz])).sum()))
    return out


# -- a cascade source over records ---------------------------------------------------------------
class RecordSource:
    """Recorded per-sample outputs as a cascade source: policies are fitted on ``calib``, replayed on
    ``val`` (the objective) and on ``test`` (reported as ``test_accuracy`` and ``test_mean_latency_ms``)."""

    kind = "replay"

    def __init__(self, records: Records) -> None:
        self.records = records
        self.name = records.name
        self.member_names = records.members
        self.memory_mb = tuple(float(k) / 1024 for k in records.param_kb)
        self.unsupported = tuple("" for _ in records.members)
        self.chains = line_chains(records.members)
        self.full_model_chain = records.members[-1]
        self.description = str(records.meta.get("description", ""))
        self._cache: dict[tuple, Any] = {}

    def members(self, chain: str) -> tuple[int, ...]:
        return self.chains[chain][0]

    def chain_memory_mb(self, chain: str) -> float:
        """A shared backbone loads every block up to the deepest exit; independent models only themselves."""
        members = self.members(chain)
        if self.records.shared_backbone:
            return float(sum(self.memory_mb[: members[-1] + 1]))
        return float(sum(self.memory_mb[m] for m in members))

    def increments_ms(self, members: Sequence[int]) -> np.ndarray:
        """Incremental latency of consulting each chain member after the previous one."""
        r = self.records
        out, prev = [], -1
        for m in members:
            out.append(float(r.block_ms[prev + 1: m + 1].sum() + r.head_ms[m]))
            prev = m
        return np.asarray(out)

    def _score(self, members, policy_obj, split: str, single: bool) -> tuple[float, np.ndarray]:
        cols = self.records.ids(split)
        inc = self.increments_ms(members)
        if single:
            m = members[-1]
            lat = float(self.records.block_ms[: m + 1].sum() + self.records.head_ms[m])
            return float(self.records.correct[m, cols].mean()), np.full(len(cols), lat)
        result = replay(policy_obj, self.records.observed(list(members), cols))
        served = np.asarray(members)[result.served]
        acc = float(self.records.correct[served, cols].mean())
        return acc, np.cumsum(inc)[result.consulted - 1]

    def evaluate(self, chain: str, policy: str, params: Mapping[str, Any]):
        from .cascade import Evaluation, _make_policy

        key = (chain, policy, tuple(sorted(params.items())))
        if key in self._cache:
            return self._cache[key]
        members = self.members(chain)

        def fit(bins: int):
            cal = self.records.ids("calib")
            inc = self.increments_ms(members)
            return fit_index_model(1.0 - self.records.conf[np.ix_(members, cal)],
                                   self.records.correct[np.ix_(members, cal)], inc / inc.sum(), bins)

        pol = _make_policy(policy, params, fit)
        single = policy == "single"
        acc, lat = self._score(members, pol, "val", single)
        test_acc, test_lat = self._score(members, pol, "test", single)
        values, counts = np.unique(lat, return_counts=True)
        ev = Evaluation(acc, ExactResult(acc, values, counts / counts.sum()),
                        {"test_accuracy": test_acc, "test_mean_latency_ms": float(test_lat.mean()),
                         "test_p95_latency_ms": float(np.quantile(test_lat, 0.95, method="inverted_cdf"))})
        self._cache[key] = ev
        return ev


if __name__ == "__main__":
    make_all(Path(__file__).parent)
