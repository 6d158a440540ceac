"""The recommendation rule of ``deploybench tune``: never the luckiest single measurement.

Near a cap, one measurement of a configuration can pass while the next fails (CPU scheduling,
frequency, other tenants): the "Hidden Device Heterogeneity" study of int8 deployment measured flip
rates up to 39 % at a 20 ms p95 cap. So the search's best trials are only *candidates*. Each is
re-measured ``repeats`` times in fresh processes, and a candidate is **robust** when the one-sided
Clopper-Pearson lower bound of its feasibility rate, at ``confidence``, is at least
``min_feasible_rate``. The search's own measurement is not counted: it was selected for looking
good, so counting it would bias the rate upward.

Among robust candidates the recommendation is the best median objective over the repeats (ties: the
higher median throughput, then the lower median latency). Alternatives say what was traded: the next
robust candidate, the safest (largest margin to the latency cap) and the fastest (highest throughput).

The functions here are pure (no measuring), so the rule is tested without hardware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterable, Mapping, Sequence

from .. import direction as direction_

__all__ = ["RecommendationRule", "CandidateVerdict", "feasibility_lower_bound", "required_repeats",
           "select_candidates", "judge_candidate", "recommend", "flip_rate", "clopper_pearson_two_sided"]


def feasibility_lower_bound(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound of a rate from ``k`` successes in ``n`` trials."""
    if n <= 0 or k <= 0:
        return 0.0
    if k >= n:
        return (1.0 - confidence) ** (1.0 / n)
    from scipy.stats import beta

    return float(beta.ppf(1.0 - confidence, k, n - k + 1))


def clopper_pearson_two_sided(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval of a binomial rate ``k / n`` ((0, 1) when ``n`` is 0); the one ``table info`` shows."""
    from ..device_tables.report import clopper_pearson

    return clopper_pearson(k, n, confidence)


def flip_rate(k: int, n: int, confidence: float = 0.95) -> tuple[float | None, tuple[float, float]]:
    """The flip rate ``min(phi, 1 - phi)`` of ``k`` feasible repeats out of ``n`` (``phi = k / n``), with
    the interval it takes over the Clopper-Pearson interval of ``phi``."""
    if n <= 0:
        return None, (0.0, 0.5)
    phi = k / n
    lo, hi = clopper_pearson_two_sided(k, n, confidence)
    ends = [min(lo, 1 - lo), min(hi, 1 - hi)]
    top = 0.5 if lo <= 0.5 <= hi else max(ends)
    return min(phi, 1 - phi), (min(ends), top)


def required_repeats(confidence: float, min_feasible_rate: float) -> int:
    """The fewest repeats with which an all-feasible candidate can pass the rule."""
    return max(1, math.ceil(math.log(1.0 - confidence) / math.log(min_feasible_rate) - 1e-12))


@dataclass(frozen=True)
class RecommendationRule:
    """``repeats`` fresh measurements per candidate; robust when the one-sided lower bound of the
    feasibility rate at ``confidence`` is at least ``min_feasible_rate``."""

    candidates: int = 3
    repeats: int = 5
    confidence: float = 0.9
    min_feasible_rate: float = 0.5

    def describe(self) -> str:
        return (f"top {self.candidates} feasible trials re-measured {self.repeats}x in fresh processes; robust when the "
                f"one-sided {self.confidence:.0%} Clopper-Pearson lower bound of P(feasible) >= "
                f"{self.min_feasible_rate:g}; best median objective among robust candidates")


@dataclass
class CandidateVerdict:
    """A candidate after its repeats: counts, the lower bound, medians, and whether it is robust."""

    key: str
    config: dict
    search_outcome: dict
    repeats: list[dict] = field(default_factory=list)
    n: int = 0
    feasible: int = 0
    lower_bound: float = 0.0
    robust: bool = False
    median_objective: float | None = None
    medians: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"key": self.key, "config": self.config, "n": self.n, "feasible": self.feasible,
                "lower_bound": round(self.lower_bound, 4), "robust": self.robust,
                "median_objective": self.median_objective, "medians": self.medians, "ranges": self.ranges,
                "reasons": self.reasons, "search_objective": self.search_outcome.get("objective")}


_SUMMARY_METRICS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput_sps", "memory_peak_mb",
                    "accuracy")


def select_candidates(trials: Iterable[Mapping[str, Any]], direction: str, k: int,
                      key_fn: Any = None) -> list[dict]:
    """The ``k`` best distinct feasible full-fidelity trials (ties: higher throughput)."""
    sign = -direction_.sign(direction)
    best: dict[str, dict] = {}
    for t in trials:
        o = t["outcome"]
        if o.get("status") != "ok" or o.get("objective") is None or (o.get("fidelity") or "full") != "full":
            continue
        key = key_fn(t["config"]) if key_fn else repr(sorted(t["config"].items()))
        if key not in best or sign * o["objective"] < sign * best[key]["outcome"]["objective"]:
            best[key] = dict(t)
    ranked = sorted(best.values(), key=lambda t: (sign * t["outcome"]["objective"],
                                                  -float((t["outcome"].get("metrics") or {}).get("throughput_sps") or 0)))
    return ranked[:k]


def judge_candidate(key: str, config: dict, search_outcome: Mapping[str, Any], repeats: Sequence[Mapping[str, Any]],
                    rule: RecommendationRule) -> CandidateVerdict:
    """Count the clean repeats (outcome dicts) of one candidate and apply the rule."""
    clean = [r for r in repeats if not (r.get("metrics") or {}).get("contaminated")]
    verdict = CandidateVerdict(key=key, config=dict(config), search_outcome=dict(search_outcome), repeats=list(clean))
    verdict.n = len(clean)
    verdict.feasible = sum(1 for r in clean if r.get("status") == "ok")
    verdict.lower_bound = feasibility_lower_bound(verdict.feasible, verdict.n, rule.confidence)
    verdict.robust = verdict.n > 0 and verdict.lower_bound >= rule.min_feasible_rate
    objectives = [r["objective"] for r in clean if r.get("status") == "ok" and r.get("objective") is not None]
    verdict.median_objective = median(objectives) if objectives else None
    for name in _SUMMARY_METRICS:
        values = [float(r["metrics"][name]) for r in clean if (r.get("metrics") or {}).get(name) is not None]
        if values:
            verdict.medians[name] = round(median(values), 4)
            verdict.ranges[name] = [round(min(values), 4), round(max(values), 4)]
    if verdict.n < rule.repeats:
        verdict.reasons.append(f"only {verdict.n} of {rule.repeats} repeats were clean")
    failed = [r for r in clean if r.get("status") != "ok"]
    if failed:
        kinds = sorted({("early stop" if r.get("early_stopped") else
                         (r.get("error") or {}).get("kind") or r.get("status")) for r in failed})
        verdict.reasons.append(f"{len(failed)} of {verdict.n} repeats not feasible ({', '.join(map(str, kinds))})")
    if not verdict.robust:
        verdict.reasons.append(f"P(feasible) lower bound {verdict.lower_bound:.2f} < {rule.min_feasible_rate:g}")
    return verdict


def _rank_key(v: CandidateVerdict, direction: str) -> tuple:
    sign = -direction_.sign(direction)
    obj = v.median_objective if v.median_objective is not None else direction_.worst_value(direction)
    return (sign * obj, -(v.medians.get("throughput_sps") or 0.0), v.medians.get("latency_p95_ms") or math.inf)


def recommend(verdicts: Sequence[CandidateVerdict], direction: str,
              latency: tuple[str, float] | None = None) -> tuple[CandidateVerdict | None, dict[str, CandidateVerdict]]:
    """(the recommended candidate or None, alternatives by role: ``next_best``, ``safer``, ``higher_throughput``).

    ``higher_throughput`` is the robust candidate with the most images per second; under a latency
    objective it is usually a larger batch, so it is named for what it gains, not "faster"."""
    robust = sorted((v for v in verdicts if v.robust), key=lambda v: _rank_key(v, direction))
    if not robust:
        return None, {}
    chosen = robust[0]
    alternatives: dict[str, CandidateVerdict] = {}
    if len(robust) > 1:
        alternatives["next_best"] = robust[1]
    if latency is not None:
        metric, cap = latency
        margin = {id(v): cap - (v.medians.get(metric) or math.inf) for v in robust}
        safest = max(robust, key=lambda v: margin[id(v)])
        if safest is not chosen and margin[id(safest)] > margin[id(chosen)]:
            alternatives["safer"] = safest
    fastest = max(robust, key=lambda v: v.medians.get("throughput_sps") or 0.0)
    if fastest is not chosen and (fastest.medians.get("throughput_sps") or 0) > (chosen.medians.get("throughput_sps") or 0):
        alternatives["higher_throughput"] = fastest
    return chosen, alternatives
