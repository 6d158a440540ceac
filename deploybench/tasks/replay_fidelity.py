"""Cheaper fidelity levels for replayed deployment scenarios: a probe and a cross-device simulator.

``probe`` replays a run cut short: the recorded repeat's preparation, process start, import, load,
compilation and warm-up as recorded, then only its first ``probe_iters`` timed iterations (format-2
tables keep every iteration's latency), so the percentiles come from a few samples, as a real probe's
would (a p95 of 10 samples is about their maximum, and flips near a cap). It is charged exactly those
recorded stages plus the sum of those iterations; the accuracy pass is skipped. The live early-stop
rule applies to the shortened sequence. Recorded crashes and time-outs happened while preparing or
loading (the v2 recorder's crash records carry only those stages), so the probe sees them all and is
charged what they cost.

``sim:<table>`` predicts the metrics from a table recorded on *another* device (cross-device
transfer): per-configuration medians of that table fitted by ridge regressions of log latency
(p50, p95, p99) and log memory on one-hot structure, log batch size and threads, plus the recorded
accuracy of each (model, precision) there. Configurations that crashed in every repeat there are
predicted to crash (an ``unsupported`` precision on one device usually is on another); nothing is
measured. The fit is a pure function of the source table, so it is part of the task's identity.

Both levels use the same recorded repeat as ``full`` for the same (seed, trial, configuration), so
probe-versus-full disagreement is the real one between the first iterations and the whole run.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from typing import Any, Mapping, Sequence

import numpy as np

from ..fidelity import Fidelity
from ..outcome import Outcome
from ..device_tables.table import Table, TableError
from ..task import EvalContext, Objective
from .deployment import Scenario, measurement_to_outcome
from .replay import EARLY_STOP_MIN_ITERS, ReplayTask, _pick, replay_early_stop

__all__ = ["probe_measurement", "TransferSimulator", "MultiFidelityReplayTask", "wide_scenario", "PROBE_ITERS"]

PROBE_ITERS = 10
SIM_COST_S = 0.01
#: stages a probe runs as recorded (everything before the timed loop)
PROBE_STAGES = ("prepare_s", "spawn_teardown_s", "import_s", "load_s", "compile_s", "warmup_s")
_PERCENTILES = {"latency_p50_ms": 50, "latency_p95_ms": 95, "latency_p99_ms": 99}


def wide_scenario(budget_seconds: float = 300.0) -> Scenario:
    """``edge_wide``: the edge scenario's caps over every runtime knob a format-2 table records
    (threads, memory format, ONNX Runtime graph optimisation), with a budget in seconds."""
    return Scenario("edge_wide", "latency_p95_ms", 20.0, 512.0, Objective("accuracy", "maximize"), 200,
                    f"edge device over every recorded runtime knob: p95 <= 20 ms, memory <= 512 MB, maximise "
                    f"accuracy; budget {budget_seconds:g} s of charged cost (probe and simulator levels)")


def probe_measurement(data: Mapping[str, Any], probe_iters: int = PROBE_ITERS) -> dict:
    """What a probe of the recorded measurement ``data`` would have returned (see the module docstring).
    A crash or time-out is returned as recorded; a run without per-iteration timings is refused."""
    data = dict(data)
    if data.get("status") in ("crashed", "timeout"):
        return data
    latencies = [float(v) for v in (data.get("latencies_ms") or ())]
    if not latencies:
        raise TableError("a probe needs per-iteration timings (tables of format 2 keep them in latencies_ms)")
    kept = latencies[:probe_iters]
    metrics = dict(data.get("metrics") or {})
    stages = {k: v for k, v in (data.get("stages") or {}).items() if k in PROBE_STAGES}
    if data.get("status") == "ok":
        per_sample = (metrics.get("latency_p50_ms_per_sample") or 0.0) / (metrics.get("latency_p50_ms") or 1.0)
        for name, q in _PERCENTILES.items():
            metrics[name] = float(np.percentile(kept, q))
            if f"{name[:-3]}_ms_per_sample" in metrics:
                metrics[f"{name[:-3]}_ms_per_sample"] = metrics[name] * per_sample
        mean = statistics.fmean(kept)
        metrics["latency_mean_ms"] = mean
        metrics["latency_min_ms"] = min(kept)
        if metrics.get("throughput_sps") and metrics.get("latency_mean_ms_per_sample"):
            batch = 1.0 / per_sample if per_sample > 0 else 1.0
            metrics["throughput_sps"] = 1000.0 * batch / mean
        metrics["latency_mean_ms_per_sample"] = mean * per_sample
        metrics["n_timed_iters"] = len(kept)
    metrics["probe_iters"] = len(kept)
    stages["measure_s"] = round(sum(kept) / 1000.0, 4)
    data.update(metrics=metrics, stages=stages, latencies_ms=kept,
                cost_s=sum(float(v or 0.0) for k, v in stages.items() if k != "measure_s") + sum(kept) / 1000.0)
    return data


def _features(config: Mapping[str, Any], columns: Sequence[str]) -> np.ndarray:
    row = []
    for col in columns:
        if col == "log2_batch":
            row.append(math.log2(float(config.get("batch_size", 1))))
        elif col == "threads":
            row.append(float(config.get("threads", 0)))
        else:
            name, _, value = col.partition("=")
            row.append(1.0 if str(config.get(name)) == value else 0.0)
    return np.asarray(row, dtype=float)


class TransferSimulator:
    """Predicted metrics for any configuration, fitted on another device's table (see the module docstring)."""

    TARGETS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "memory_peak_mb")
    RIDGE = 1e-2

    def __init__(self, source: Table) -> None:
        self.source_name = source.name
        self.source_provenance = {k: source.provenance.get(k) for k in ("device", "device_name", "date")}
        rows, crashed, accuracy = [], {}, {}
        for key, repeats in source.measurements.items():
            config = source.configs.get(key) or {}
            ok = [m for m in repeats if m.get("status") == "ok"]
            if not ok:
                kinds = {(m.get("error") or {}).get("kind") for m in repeats}
                if repeats and kinds <= {"unsupported"}:
                    crashed[json.dumps(sorted(config.items()), default=str)] = "unsupported"
                continue
            medians = {t: statistics.median(float(m["metrics"][t]) for m in ok) for t in self.TARGETS
                       if all(m["metrics"].get(t) for m in ok)}
            if len(medians) == len(self.TARGETS):
                rows.append((config, medians))
            acc = ok[0]["metrics"].get("accuracy")
            if acc is not None:
                accuracy[(config.get("model"), config.get("precision"))] = float(acc)
        if len(rows) < 4:
            raise TableError(f"table {source.name} has {len(rows)} configurations that ran; a simulator needs at least 4")
        cats = sorted({f"{k}={v}" for c, _ in rows for k, v in c.items() if isinstance(v, str)})
        self.columns = cats + ["log2_batch", "threads"]
        X = np.vstack([_features(c, self.columns) for c, _ in rows])
        A = np.hstack([np.ones((len(X), 1)), X])
        G = A.T @ A + self.RIDGE * np.eye(A.shape[1])
        self.coefs = {t: np.linalg.solve(G, A.T @ np.log([m[t] for _, m in rows])) for t in self.TARGETS}
        self.crashed = crashed
        self.accuracy = accuracy

    def fingerprint(self) -> str:
        blob = json.dumps({"source": self.source_name, "provenance": self.source_provenance, "columns": self.columns,
                           "coefs": {k: [round(float(x), 10) for x in v] for k, v in self.coefs.items()},
                           "crashed": sorted(self.crashed), "accuracy": sorted(map(str, self.accuracy.items()))})
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def predict(self, config: Mapping[str, Any]) -> dict:
        """A measurement-shaped dict (status, metrics, cost_s) of predicted values."""
        if json.dumps(sorted(config.items()), default=str) in self.crashed:
            return {"status": "crashed", "metrics": {}, "cost_s": SIM_COST_S,
                    "error": {"kind": "unsupported", "message": f"predicted: crashed on {self.source_name}"}}
        x = np.concatenate([[1.0], _features(config, self.columns)])
        metrics: dict[str, Any] = {t: float(np.exp(x @ self.coefs[t])) for t in self.TARGETS}
        batch = float(config.get("batch_size", 1))
        metrics["throughput_sps"] = 1000.0 * batch / metrics["latency_p50_ms"]
        for t in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
            metrics[f"{t[:-3]}_ms_per_sample"] = metrics[t] / batch
        acc = self.accuracy.get((config.get("model"), config.get("precision")))
        metrics["accuracy"] = acc
        metrics["accuracy_unknown"] = 0.0 if acc is not None else 1.0
        metrics["simulated_from"] = self.source_name
        return {"status": "ok", "metrics": metrics, "cost_s": SIM_COST_S}


class MultiFidelityReplayTask(ReplayTask):
    """A scenario replayed from a format-2 table with ``sim:<source table name>`` (when a source table is given),
    ``probe`` and ``full`` levels, and a budget in seconds of charged cost."""

    VERSION = "2-mf1"

    def __init__(self, scenario: Scenario | str, table: Table, target: str, *, source: Table | None = None,
                 budget_seconds: float | None = 300.0, probe_iters: int = PROBE_ITERS) -> None:
        super().__init__(scenario, table, target)
        ran = [m for reps in table.measurements.values() for m in reps if m.get("status") == "ok"]
        if not ran or not all(m.get("latencies_ms") for m in ran):
            raise TableError(f"table {table.name} has no per-iteration timings (format 1); the probe level needs a "
                             "table of format 2 (deploybench record writes them)")
        self.probe_iters = int(probe_iters)
        self.simulator = TransferSimulator(source) if source is not None else None
        levels = []
        if self.simulator is not None:
            levels.append(Fidelity(f"sim:{source.name}", "simulator", 0.001, cost_model=f"{SIM_COST_S} s",
                                   crashes=f"configurations that crashed in every repeat on {source.name}",
                                   description=f"ridge regressions fitted on table {source.name}"))
        levels.append(Fidelity("probe", "probe", 0.3,
                               cost_model=f"recorded stages up to the timed loop + the first {self.probe_iters} "
                                          "timed iterations",
                               crashes="every recorded crash (they happen while preparing or loading)",
                               description=f"percentiles of the first {self.probe_iters} timed iterations"))
        levels.append(Fidelity("full", "full", 1.0, cost_model="the recorded evaluation seconds", crashes="all"))
        self.declare_fidelities(levels, budget_seconds)

    def signature_extra(self) -> Any:
        extra = dict(super().signature_extra())
        extra["probe_iters"] = self.probe_iters
        if self.simulator is not None:
            extra["simulator"] = self.simulator.fingerprint()
        return extra

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        context = context or EvalContext()
        level = self.fidelity(context.fidelity)
        if level.kind == "full":
            return super().evaluate(config, context)
        if level.kind == "simulator":
            assert self.simulator is not None
            return measurement_to_outcome(self, self.simulator.predict(config)).at_fidelity(level.name, True)
        key = self.space.key(config)
        repeats = self.table.repeats(key)
        if not repeats:
            raise TableError(f"table {self.table.name} has no measurement of {dict(config)}")
        data = repeats[_pick(context.seed, context.trial, key, len(repeats))]  # the repeat full would replay
        factor = 3.0 if context.feasible_found else 5.0
        threshold = factor * self.scenario.latency_cap_ms
        if data.get("status") == "early_stopped":
            data = {**data, "latencies_ms": list(data.get("latencies_ms") or ())[: self.probe_iters]}
            probe = replay_early_stop(data, threshold)
        else:
            probe = probe_measurement(data, self.probe_iters)
            if probe.get("status") == "ok" and len(probe["latencies_ms"]) >= EARLY_STOP_MIN_ITERS:
                probe = replay_early_stop(probe, threshold)
        return measurement_to_outcome(self, probe).at_fidelity(level.name)
