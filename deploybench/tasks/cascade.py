"""The cascade task family: choose a serving cascade and its exit policy under hard limits.

A configuration names which members are loaded (``members``, a chain consulted in order), the exit
policy (``policy``) and its parameters:

- ``single``: only the chain's last member runs (the one-model baseline);
- ``threshold``: exit at the first member whose confidence reaches its threshold ``tau_<position>``
  and serve it (recall-free: the usual early exit);
- ``threshold_recall``: the same stop rule, but serve the most confident member consulted;
- ``patience``: exit once the prediction stayed unchanged ``patience`` times in a row (PABEE-style);
- ``dynamic_index``: the T-Tamer dynamic-index policy with recall (arXiv 2509.22992, ICLR 2026),
  planned by backward recursion on ``bins`` proxy-loss bins with latency weight
  ``latency_weight`` = (1 − λ)/λ.

Thresholds are per chain position (``tau_1`` for the first member, ...); a threshold for a position
the chain does not have is unused. Crashes, with DeployBench's meanings:

- ``unsupported``: the chain loads a member the target runtime cannot execute;
- ``oom``: the loaded members' memory exceeds the device memory (the scenario's memory cap is a
  constraint below it, so between the cap and the device limit a configuration is merely infeasible);
- ``timeout``: the index policy's modelled preprocessing time (``DP_SECONDS_PER_OP`` × positions² ×
  bins³) exceeds the trial time limit.

Costs are modelled: loading the members (memory / ``LOAD_MB_PER_S``), the policy's preprocessing,
and serving ``N_EVAL_SAMPLES`` samples at the policy's mean latency.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from ..outcome import ErrorKind, Outcome
from ..space import Categorical, Condition, Ordinal, SearchSpace
from ..task import Constraint, EvalContext, Objective, Task, TaskMetadata
from .cascade_exact import CascadeInstance, ExactResult, exact_evaluate, exact_index_model, get_instance, prophet
from .cascade_policies import (IndexPolicy, MarkovNoRecallPolicy, Patience, SingleMember, Threshold, lam_from_weight)
from .cascade_scenarios import SCENARIOS, CascadeScenario

__all__ = ["POLICIES", "TAU_GRID", "WEIGHT_GRID", "BINS_GRID", "PATIENCE_GRID", "CascadeScenario", "SCENARIOS",
           "CascadeTask", "ExactSource", "Evaluation", "cascade_space", "effective_configs", "enumerate_space",
           "reference_rows", "build_cascade_task", "compute_optimum", "best_of", "stored_optima"]

POLICIES = ("single", "threshold", "threshold_recall", "patience", "dynamic_index")
TAU_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
WEIGHT_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BINS_GRID = (4, 8, 16, 32)
PATIENCE_GRID = (1, 2, 3)
#: modelled seconds per elementary step of the index policy's backward recursion (a slow edge CPU)
DP_SECONDS_PER_OP = 2e-4
LOAD_MB_PER_S = 400.0
N_EVAL_SAMPLES = 2000
CRASH_COST_FRACTION = 0.5


@dataclass(frozen=True)
class Evaluation:
    """What a source reports for one (chain, policy): accuracy and the per-sample latency distribution,
    plus any further metrics (held-out test scores of recorded sources)."""

    accuracy: float
    latency: ExactResult
    extra: Mapping[str, float] = field(default_factory=dict)


class CascadeSource(Protocol):
    """Where a cascade task's numbers come from: an exact instance or recorded per-sample outputs."""

    name: str
    member_names: tuple[str, ...]
    memory_mb: tuple[float, ...]
    unsupported: tuple[str, ...]
    chains: Mapping[str, tuple[tuple[int, ...], ...]]
    full_model_chain: str
    kind: str
    description: str

    def members(self, chain: str) -> tuple[int, ...]: ...

    def evaluate(self, chain: str, policy: str, params: Mapping[str, Any]) -> Evaluation: ...


def _make_policy(policy: str, params: Mapping[str, Any], fit: Callable[[int], Any]):
    """A policy object from a configuration. ``fit(bins)`` returns the index model (per branch)."""
    if policy == "single":
        return SingleMember()
    if policy in ("threshold", "threshold_recall"):
        taus = tuple(float(params[k]) for k in sorted((k for k in params if k.startswith("tau_")),
                                                      key=lambda k: int(k[4:])))
        return Threshold(taus, recall=policy == "threshold_recall")
    if policy == "patience":
        return Patience(int(params["patience"]))
    if policy == "dynamic_index":
        return IndexPolicy.fit(fit(int(params["bins"])), lam_from_weight(float(params["latency_weight"])))
    raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")


class ExactSource:
    """An exact synthetic instance as a cascade source: every number is an exact expectation."""

    kind = "analytic"

    def __init__(self, instance: CascadeInstance) -> None:
        self.instance = instance
        self.name = instance.name
        self.member_names = tuple(s.name for s in instance.stages)
        self.memory_mb = tuple(float(s.memory_mb) for s in instance.stages)
        self.unsupported = tuple(s.unsupported for s in instance.stages)
        self.chains = instance.chains
        self.full_model_chain = instance.full_chain  # with policy single: the deepest member of each branch
        self.description = instance.description
        self._cache: dict[tuple, Evaluation] = {}

    def members(self, chain: str) -> tuple[int, ...]:
        return self.instance.members(chain)

    def chain_length(self, chain: str) -> int:
        return max(len(p) for p in self.chains[chain])

    def evaluate(self, chain: str, policy: str, params: Mapping[str, Any]) -> Evaluation:
        key = (chain, policy, tuple(sorted(params.items())))
        if key not in self._cache:
            inst = self.instance
            if policy == "dynamic_index":
                pols = [_make_policy(policy, params, lambda bins, b=b: exact_index_model(inst, b, chain, bins))
                        for b in range(len(inst.branches))]
            else:
                pols = _make_policy(policy, params, lambda bins: None)
            r = exact_evaluate(inst, chain, pols, single=policy == "single")
            self._cache[key] = Evaluation(r.accuracy, r)
        return self._cache[key]


def cascade_space(source: CascadeSource) -> SearchSpace:
    """The finite, conditional configuration space of a source."""
    positions = max(max(len(p) for p in per_branch) for per_branch in source.chains.values())
    thr = Condition("policy", ("threshold", "threshold_recall"))
    params = [Categorical("members", choices=tuple(source.chains)), Categorical("policy", choices=POLICIES)]
    params += [Ordinal(f"tau_{i + 1}", values=TAU_GRID, condition=thr) for i in range(positions - 1)]
    params += [
        Ordinal("patience", values=PATIENCE_GRID, condition=Condition("policy", ("patience",))),
        Ordinal("latency_weight", values=WEIGHT_GRID, log=True, condition=Condition("policy", ("dynamic_index",))),
        Ordinal("bins", values=BINS_GRID, log=True, condition=Condition("policy", ("dynamic_index",))),
    ]
    return SearchSpace(params)


def _policy_params(config: Mapping[str, Any], chain_len: int) -> dict[str, Any]:
    """The parameters that change the policy's behaviour (unused thresholds dropped)."""
    policy = config["policy"]
    if policy in ("threshold", "threshold_recall"):
        return {f"tau_{i + 1}": config[f"tau_{i + 1}"] for i in range(chain_len - 1)}
    if policy == "patience":
        return {"patience": config["patience"]}
    if policy == "dynamic_index":
        return {"latency_weight": config["latency_weight"], "bins": config["bins"]}
    return {}


def _diagnostics(source: CascadeSource) -> dict[str, Any]:
    """Recorded sources: how far the calibration records are from the Markov assumption."""
    records = getattr(source, "records", None)
    if records is None:
        return {}
    from .cascade_records import markov_violation_bits

    cal = records.ids("calib")
    bits = markov_violation_bits(1.0 - records.conf[:, cal])
    return {"markov_violation_bits": {f"{records.members[i]}|{records.members[i + 1]}|{records.members[i + 2]}": b
                                      for i, b in enumerate(bits)}}


class CascadeTask(Task):
    """One cascade scenario. See the module docstring for the space, crashes and costs."""

    def __init__(self, scenario: CascadeScenario, source: CascadeSource, *, version: str = "1",
                 optimum: Mapping[str, Any] | None = None) -> None:
        self.scenario = scenario
        self.source = source
        self._full = None
        constraints = []
        if scenario.mean_latency_ms is not None:
            constraints.append(Constraint("mean_latency_ms", scenario.mean_latency_ms))
        if scenario.p95_latency_ms is not None:
            constraints.append(Constraint("p95_latency_ms", scenario.p95_latency_ms))
        constraints.append(Constraint("memory_mb", scenario.memory_mb))
        if scenario.accuracy_drop is not None:
            constraints.append(Constraint("accuracy_drop", scenario.accuracy_drop))
        direction = "maximize" if scenario.objective == "accuracy" else "minimize"
        optimum = dict(optimum or {})
        super().__init__(
            name=scenario.name, version=version, space=cascade_space(source),
            objective=Objective(scenario.objective, direction), constraints=constraints,
            default_budget=scenario.budget,
            metadata=TaskMetadata(
                kind=source.kind, known_optimum=optimum.get("optimum"), penalty=optimum.get("penalty"),
                family_param="policy", best_family=optimum.get("best_family"), target=source.name,
                description=scenario.description or source.description,
                reference="T-Tamer (arXiv 2509.22992, ICLR 2026): multi-model serving as sequential stop-or-continue "
                          "decisions; the dynamic-index policy with recall",
                extra={**_diagnostics(source),
                       "device_memory_mb": scenario.device_memory_mb, "time_limit_s": scenario.time_limit_s,
                       "witness": optimum.get("witness"), "reference_rows": optimum.get("reference_rows", []),
                       "optimum_grid": "the whole finite space, enumerated exhaustively",
                       "source": source.description},
            ),
        )

    # -- model pieces ---------------------------------------------------------------------------
    def loaded_memory(self, chain: str) -> float:
        return chain_memory(self.source, chain)

    def chain_length(self, chain: str) -> int:
        return max(len(p) for p in self.source.chains[chain])

    def fit_seconds(self, config: Mapping[str, Any]) -> float:
        """Modelled preprocessing time of the policy (only the index policy has any)."""
        if config["policy"] != "dynamic_index":
            return 0.0
        return DP_SECONDS_PER_OP * self.chain_length(config["members"]) ** 2 * int(config["bins"]) ** 3

    def full_model_accuracy(self) -> float:
        if self._full is None:
            self._full = self.source.evaluate(self.source.full_model_chain, "single", {}).accuracy
        return self._full

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        chain = config["members"]
        members = self.source.members(chain)
        load_s = self.loaded_memory(chain) / LOAD_MB_PER_S
        for m in members:
            if self.source.unsupported[m]:
                done = sum(self.source.memory_mb[k] for k in members if k < m) / LOAD_MB_PER_S
                return Outcome.crashed(ErrorKind.UNSUPPORTED, self.source.unsupported[m], cost_s=max(done, 0.05))
        memory = self.loaded_memory(chain)
        if memory > self.scenario.device_memory_mb:
            return Outcome.crashed(
                ErrorKind.OOM, f"loading {chain} needs {memory:.0f} MB, the device has "
                               f"{self.scenario.device_memory_mb:.0f} MB",
                cost_s=self.scenario.device_memory_mb / LOAD_MB_PER_S, metrics={"memory_mb": memory})
        fit_s = self.fit_seconds(config)
        if fit_s > self.scenario.time_limit_s:
            return Outcome.timed_out(
                f"the index policy's preprocessing ({fit_s:.0f} s modelled for {self.chain_length(chain)} positions "
                f"and {config['bins']} bins) exceeds the {self.scenario.time_limit_s:.0f} s trial limit",
                cost_s=load_s + self.scenario.time_limit_s)
        ev = self.source.evaluate(chain, config["policy"],
                                  _policy_params(config, self.chain_length(chain)))
        mean_lat = ev.latency.mean_latency
        metrics = {
            "accuracy": ev.accuracy,
            "error": 1.0 - ev.accuracy,
            "mean_latency_ms": mean_lat,
            "p95_latency_ms": ev.latency.latency_quantile(0.95),
            "memory_mb": memory,
            "accuracy_drop": 100.0 * (self.full_model_accuracy() - ev.accuracy),
            "members_loaded": len(members),
            "fit_s": fit_s,
            **dict(ev.extra),
        }
        cost = load_s + fit_s + N_EVAL_SAMPLES * mean_lat / 1000.0
        return self.judge(metrics, cost)

    def signature_extra(self) -> Any:
        return {"source": self.source.name, "device_memory_mb": self.scenario.device_memory_mb,
                "time_limit_s": self.scenario.time_limit_s}


# -- exhaustive enumeration -----------------------------------------------------------------------
def effective_configs(task: CascadeTask) -> Iterator[dict[str, Any]]:
    """Every behaviourally distinct configuration once (unused thresholds set to the grid's first value)."""
    space = task.space
    taus = [p.name for p in space.params if p.name.startswith("tau_")]
    for chain in task.source.chains:
        length = task.chain_length(chain)
        for policy in POLICIES:
            base = {"members": chain, "policy": policy}
            if policy in ("threshold", "threshold_recall"):
                used = taus[: length - 1]
                for values in _product([TAU_GRID] * len(used)):
                    cfg = dict(base)
                    for name in taus:
                        cfg[name] = TAU_GRID[0]
                    cfg.update(zip(used, values))
                    yield cfg
            elif policy == "patience":
                for k in PATIENCE_GRID:
                    yield {**base, "patience": k}
            elif policy == "dynamic_index":
                for w in WEIGHT_GRID:
                    for b in BINS_GRID:
                        yield {**base, "latency_weight": w, "bins": b}
            else:
                yield base


def _product(lists: Sequence[Sequence[Any]]) -> Iterator[tuple]:
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for tail in _product(lists[1:]):
            yield (head, *tail)


def enumerate_space(task: CascadeTask, configs: Iterator[Mapping[str, Any]] | None = None
                    ) -> list[tuple[dict, Outcome]]:
    """Evaluate every (effective) configuration: the ground truth behind the known optimum."""
    out = []
    for cfg in configs if configs is not None else effective_configs(task):
        out.append((dict(cfg), task.evaluate(cfg, EvalContext())))
    return out


def best_of(task: CascadeTask, results: Sequence[tuple[dict, Outcome]]) -> tuple[dict | None, float | None, float | None]:
    """The best feasible configuration, its objective, and the worst feasible objective."""
    feasible = [(c, o) for c, o in results if o.feasible]
    if not feasible:
        return None, None, None
    sign = task.objective.sign
    best = max(feasible, key=lambda co: sign * co[1].objective)
    worst = min(feasible, key=lambda co: sign * co[1].objective)
    return best[0], best[1].objective, worst[1].objective


def reference_rows(task: CascadeTask, results: Sequence[tuple[dict, Outcome]]) -> list[dict[str, Any]]:
    """Labelled reference rows (context, never competitors): the prophet bound, the best single shared
    threshold, the best recall-free configuration, and T-Tamer's index policy at the mean-latency cap
    (latency weight bisected, bins = the finest grid value) on the optimum's chain."""
    sign = task.objective.sign
    rows: list[dict[str, Any]] = []

    def row(label: str, cfg: dict | None, o: Outcome | None, note: str) -> dict[str, Any]:
        return {"label": label, "config": cfg, "status": None if o is None else o.status.value,
                "accuracy": None if o is None else o.metrics.get("accuracy"),
                "mean_latency_ms": None if o is None else o.metrics.get("mean_latency_ms"),
                "objective": None if o is None else o.objective, "note": note}

    def best(pred: Callable[[dict], bool]) -> tuple[dict | None, Outcome | None]:
        cands = [(c, o) for c, o in results if o.feasible and pred(c)]
        if not cands:
            return None, None
        return max(cands, key=lambda co: sign * co[1].objective)

    shared = lambda c: c["policy"] == "threshold" and len({c[k] for k in c if k.startswith("tau_")
                                                           and int(k[4:]) < task.chain_length(c["members"])}) <= 1
    rows.append(row("best single shared threshold", *best(shared), "recall-free, one threshold for every member"))
    rows.append(row("best recall-free configuration",
                    *best(lambda c: c["policy"] in ("single", "threshold", "patience")),
                    "single model, threshold or patience: no recall"))
    rows.append(row("best with recall", *best(lambda c: c["policy"] in ("threshold_recall", "dynamic_index")),
                    "threshold with recall or the T-Tamer index"))
    best_cfg, _, _ = best_of(task, results)
    if isinstance(task.source, ExactSource) and best_cfg is not None:
        chain = best_cfg["members"]
        acc, lat = prophet(task.source.instance, chain)
        rows.append({"label": "prophet bound", "config": {"members": chain}, "status": None, "accuracy": acc,
                     "mean_latency_ms": lat, "objective": acc if task.objective.metric == "accuracy" else lat,
                     "note": "clairvoyant: serves any correct consulted member; unattainable, context only"})
        if task.scenario.mean_latency_ms is not None:
            rows.append(_at_cap(task, chain, "dynamic_index"))
            rows.append(_at_cap(task, chain, "markov_no_recall"))
    return rows


def _at_cap(task: CascadeTask, chain: str, kind: str) -> dict[str, Any]:
    """The index policy (or the recall-free Markov-optimal policy) with its latency weight bisected on
    a log scale so the mean latency meets the cap, with one bin per proxy level."""
    inst = task.source.instance
    cap = task.scenario.mean_latency_ms
    bins = max(len(s.values) for s in inst.stages)

    def run(weight: float) -> ExactResult:
        lam = lam_from_weight(weight)
        pols = []
        for b in range(len(inst.branches)):
            model = exact_index_model(inst, b, chain, bins)
            pols.append(IndexPolicy.fit(model, lam) if kind == "dynamic_index" else MarkovNoRecallPolicy.fit(model, lam))
        return exact_evaluate(inst, chain, pols)

    lo, hi = math.log(1e-5), math.log(1e3)  # small weight: slow and accurate; large: fast
    best = None
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        r = run(math.exp(mid))
        if r.mean_latency <= cap:
            best = (math.exp(mid), r)
            hi = mid
        else:
            lo = mid
    label = "T-Tamer index at the cap" if kind == "dynamic_index" else "recall-free Markov-optimal at the cap"
    if best is None:
        return {"label": label, "config": {"members": chain}, "status": None, "accuracy": None,
                "mean_latency_ms": None, "objective": None, "note": "no weight meets the cap"}
    w, r = best
    return {"label": label, "config": {"members": chain, "latency_weight": w, "bins": bins}, "status": None,
            "accuracy": r.accuracy, "mean_latency_ms": r.mean_latency,
            "objective": r.accuracy if task.objective.metric == "accuracy" else r.mean_latency,
            "note": "latency weight bisected to the mean-latency cap (continuous, outside the grid); "
                    "mean latency only, p95 not enforced"}


# -- stored optima and the factory ------------------------------------------------------------------
OPTIMA_FILE = "cascade_optima.json"


@lru_cache(maxsize=1)
def stored_optima() -> dict[str, Any]:
    """The enumerated optima shipped with the package (regenerate: ``python -m deploybench.tasks.cascade``)."""
    try:
        text = resources.files("deploybench.tasks").joinpath(OPTIMA_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return json.loads(text)


def _source(name: str) -> CascadeSource:
    from .cascade_records import RecordSource, load_records
    from .cascade_scenarios import RECORDS

    if name in RECORDS:
        return RecordSource(load_records(name))
    return ExactSource(get_instance(name))


def _resolve(scenario: CascadeScenario, source: CascadeSource) -> CascadeScenario:
    """Absolute caps for a relative scenario: latency caps × the full model's latency, memory caps ×
    every member's memory together."""
    if not scenario.relative:
        return scenario
    full = source.evaluate(source.full_model_chain, "single", {}).latency.mean_latency
    total = chain_memory(source, max(source.chains, key=lambda c: len(source.members(c))))
    def scale(x: float | None, by: float) -> float | None:  # six significant digits, rounded up
        if x is None:
            return None
        digits = 5 - math.floor(math.log10(abs(x * by)))
        return math.ceil(x * by * 10 ** digits) / 10 ** digits

    return dataclasses.replace(scenario, mean_latency_ms=scale(scenario.mean_latency_ms, full),
                               p95_latency_ms=scale(scenario.p95_latency_ms, full),
                               memory_mb=scale(scenario.memory_mb, total),
                               device_memory_mb=scale(scenario.device_memory_mb, total), relative=False)


def chain_memory(source: CascadeSource, chain: str) -> float:
    """Memory of a chain's loaded members (a shared backbone counts once, up to the deepest exit)."""
    own = getattr(source, "chain_memory_mb", None)
    if own is not None:
        return float(own(chain))
    return float(sum(source.memory_mb[m] for m in source.members(chain)))


def build_cascade_task(name: str, *, with_optimum: bool = True) -> CascadeTask:
    """Build a registered cascade scenario; its known optimum comes from the stored enumeration when
    that enumeration was made for this exact task (same signature)."""
    if name not in SCENARIOS:
        from ..errors import did_you_mean

        raise KeyError(f"unknown cascade task {name!r}; known: {', '.join(SCENARIOS)}"
                       + did_you_mean(name, list(SCENARIOS)))
    scenario = SCENARIOS[name]
    source = _source(scenario.source)
    scenario = _resolve(scenario, source)
    task = CascadeTask(scenario, source)
    if with_optimum:
        stored = stored_optima().get(name)
        if stored and stored.get("signature") == task.signature():
            task = CascadeTask(scenario, task.source, optimum=stored)
    return task


def compute_optimum(name: str) -> dict[str, Any]:
    """Enumerate a scenario's whole space: optimum, penalty, witness, best family and reference rows."""
    task = build_cascade_task(name, with_optimum=False)
    results = enumerate_space(task)
    cfg, opt, worst = best_of(task, results)
    statuses: dict[str, int] = {}
    for _, o in results:
        key = o.status.value if o.error is None else f"{o.status.value}:{o.error.kind.value}"
        statuses[key] = statuses.get(key, 0) + 1
    return {"signature": task.signature(), "optimum": opt, "penalty": worst, "witness": cfg,
            "best_family": None if cfg is None else cfg["policy"], "n_configs": len(results),
            "statuses": statuses, "reference_rows": reference_rows(task, results)}


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the stored optima: ``python -m deploybench.tasks.cascade [--out FILE] [names...]``."""
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("names", nargs="*", default=list(SCENARIOS))
    p.add_argument("--out", default=str(Path(__file__).with_name(OPTIMA_FILE)))
    args = p.parse_args(argv)
    data = dict(stored_optima())
    for name in args.names:
        data[name] = compute_optimum(name)
        print(f"{name}: optimum {data[name]['optimum']} with {data[name]['witness']} "
              f"({data[name]['n_configs']} configurations: {data[name]['statuses']})")
    Path(args.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
