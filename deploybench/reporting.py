"""What a run tells its user: the answer per task, one line per trial, and what the letters mean.

A user of a deployment optimizer came for a configuration and its measurements, not for a mean over
seeds; :func:`answers` finds, per task, the best feasible configuration any case of the session
found (from the same summaries the leaderboard scores), with its measured metrics, the objective's name and direction, the regret to the known
optimum where there is one, and how many seeds found it. The per-trial lines (``-v``) name the
constraint that decides each trial's feasibility.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from . import direction as direction_
from .runner import GLYPHS
from .scoring.metrics import GroupResult, loss
from .scoring.reading import CaseSummary

__all__ = ["PROGRESS_LEGEND", "TaskAnswer", "glyph", "answers", "format_answers", "format_value", "short_config",
           "binding_constraint", "trial_line", "trial_detail", "next_step_line"]

_GLYPH_MEANINGS = {
    "ok": "ok (feasible)",
    "infeasible": "infeasible (a limit was exceeded)",
    "early_stopped": "early-stopped (cut short: clearly over a limit)",
    "crashed": "crashed",
    "timeout": "timed out",
    "lower_fidelity": "a cheaper fidelity level (simulator or probe: never counts as found)",
}
#: one line explaining the progress letters (printed under the first run in a results folder, and in --help)
PROGRESS_LEGEND = "progress letters, one per trial: " + ", ".join(
    f"{GLYPHS[k]} {_GLYPH_MEANINGS[k]}" for k in ("ok", "infeasible", "early_stopped", "crashed", "timeout"))


def glyph(outcome: Mapping[str, Any]) -> str:
    """The progress letter of one trial's outcome (see :data:`PROGRESS_LEGEND`)."""
    if (outcome.get("fidelity") or "full") != "full":
        return GLYPHS["lower_fidelity"]
    return GLYPHS["early_stopped"] if outcome.get("early_stopped") else GLYPHS[outcome["status"]]


def format_value(value: Any) -> str:
    """Numbers rounded to 4 significant digits (``0.8085800000000001`` → ``0.8086``); others as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def short_config(config: Mapping[str, Any]) -> str:
    """``model=resnet50 backend=onnxruntime batch_size=4``, numbers rounded."""
    return " ".join(f"{k}={format_value(v)}" for k, v in config.items())


def _direction_words(direction: str) -> str:
    return direction_.in_words(direction)


def binding_constraint(outcome: Mapping[str, Any], constraints: Sequence[Mapping[str, Any]]) -> str:
    """The constraint that decides this trial: the most violated one when infeasible, the one closest
    to its cap when feasible (``latency_p95_ms 18.2 <= 20``); for a crash or timeout, its error kind."""
    if outcome.get("status") in ("crashed", "timeout"):
        error = outcome.get("error") or {}
        message = (error.get("message") or "").strip().splitlines()
        return f"{error.get('kind', outcome['status'])}" + (f": {message[0][:80]}" if message else "")
    metrics = outcome.get("metrics") or {}
    violation = outcome.get("violation") or {}
    measured = [(c, metrics.get(c["metric"])) for c in constraints if metrics.get(c["metric"]) is not None]
    if not measured:
        return ""
    if any(violation.get(c["metric"], 0) > 0 for c, _ in measured):
        c, value = max(measured, key=lambda cv: violation.get(cv[0]["metric"], 0))
        return f"{c['metric']} {format_value(value)} > {format_value(c['cap'])}"
    c, value = max(measured, key=lambda cv: (cv[1] - cv[0]["cap"]) / cv[0]["scale"])
    return f"{c['metric']} {format_value(value)} <= {format_value(c['cap'])}"


def _status_word(outcome: Mapping[str, Any]) -> str:
    return "early_stopped" if outcome.get("early_stopped") else str(outcome.get("status"))


def trial_line(record: Mapping[str, Any], objective_metric: str, constraints: Sequence[Mapping[str, Any]]) -> str:
    """``-v``: one line per trial: number, short config, status, objective, binding constraint."""
    o = record["outcome"]
    objective = "" if o.get("objective") is None else f"{objective_metric}={format_value(o['objective'])}"
    parts = [f"  {record['trial']:>3}", short_config(record["config"]), "->", _status_word(o), objective,
             binding_constraint(o, constraints)]
    return " ".join(p for p in parts if p)


def trial_detail(record: Mapping[str, Any], objective_metric: str, constraints: Sequence[Mapping[str, Any]]) -> str:
    """``-vv``: the trial line, then every metric, violation and the cost, rounded."""
    o = record["outcome"]
    lines = [trial_line(record, objective_metric, constraints)]
    metrics = {k: v for k, v in (o.get("metrics") or {}).items() if not isinstance(v, (dict, list))}
    if metrics:
        lines.append("      metrics: " + ", ".join(f"{k}={format_value(v)}" for k, v in metrics.items()))
    violated = {k: v for k, v in (o.get("violation") or {}).items() if v}
    extra = [f"cost={format_value(float(o.get('cost_s', 0.0)))}s"]
    if violated:
        extra.append("violation: " + ", ".join(f"{k}={format_value(v)}" for k, v in violated.items()))
    if record.get("duplicate"):
        extra.append("duplicate of an earlier trial")
    if o.get("error"):
        extra.append(f"error {o['error'].get('kind')}: {(o['error'].get('message') or '').strip().splitlines()[0][:200]}"
                     if (o["error"].get("message") or "").strip() else f"error {o['error'].get('kind')}")
    lines.append("      " + "; ".join(extra))
    return "\n".join(lines)


@dataclass
class TaskAnswer:
    """The best feasible configuration the session found for one task (one leaderboard table)."""

    task_label: str
    objective_metric: str
    direction: str
    constraints: list[dict]
    known_optimum: float | None
    best: float | None = None
    config: dict | None = None
    metrics: dict = field(default_factory=dict)
    found_by: dict[str, tuple[int, int]] = field(default_factory=dict)  # optimizer -> (seeds reaching best, seeds)
    source: str = ""  # "path (trial N)" of the trial that measured it

    @property
    def regret(self) -> float | None:
        if self.best is None or self.known_optimum is None:
            return None
        return max(0.0, self.gap)

    @property
    def gap(self) -> float | None:
        """Signed distance to the known optimum (negative: the best trial beat it)."""
        if self.best is None or self.known_optimum is None:
            return None
        return direction_.regret(self.known_optimum, self.best, self.direction)


def _reached(value: float | None, best: float | None) -> bool:
    """Whether a seed's best equals the session's best (several configurations can tie: accuracy is
    a property of the model, whatever the backend or batch size)."""
    return value is not None and best is not None and abs(value - best) <= 1e-9 * max(1.0, abs(best))


def _where(case: CaseSummary) -> str:
    """Where in its case file the best value was measured: the trial's own ``"trial"`` number, or the
    end line's recommendation (a multi-fidelity optimizer's full-fidelity validation)."""
    rec = case.recommendation or {}
    if rec and rec.get("config") == case.best_config and (rec.get("outcome") or {}).get("objective") == case.best:
        return " (the recommendation in its end line)"
    return f" (trial {case.best_trial - 1})" if case.best_trial else ""


def answers(groups: Iterable[GroupResult]) -> list[TaskAnswer]:
    """Per table of :func:`deploybench.scoring.summary.summarize` (a task at one budget), the best
    feasible configuration over every optimizer and seed, from the same case summaries the
    leaderboard scores (so the run's answer and the leaderboard's best configuration agree)."""
    out = []
    for group in groups:
        first = group.rows[0].cases[0]
        answer = TaskAnswer(group.key.task_label, group.objective_metric, group.direction, list(first.constraints),
                            group.known_optimum)
        candidates = [(row, row.answer) for row in group.rows if row.answer is not None]
        if candidates:
            row, top = min(candidates, key=lambda ra: loss(ra[1].objective, group.direction))
            answer.best, answer.config, answer.metrics = top.objective, dict(top.config), dict(top.metrics)
            case = next(c for c in row.cases if c.seed == top.seed)
            answer.source = case.path + _where(case)
        for row in group.rows:
            answer.found_by[row.label] = (sum(_reached(c.best, answer.best) for c in row.cases), len(row.cases))
        out.append(answer)
    return out


def _display_path(path: str) -> str:
    """A path relative to the working directory when it lies below it (shorter, copyable)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


def format_answers(found: Sequence[TaskAnswer]) -> list[str]:
    """Lines of the answer block: per task the objective, the best configuration, its measurements."""
    lines: list[str] = []
    for a in found:
        limits = ", ".join(f"{c['metric']} <= {format_value(c['cap'])}" for c in a.constraints)
        verb = "maximise" if direction_.is_max(a.direction) else "minimise"
        lines.append(f"{a.task_label}: {verb} {a.objective_metric} ({_direction_words(a.direction)})"
                     + (f" subject to {limits}" if limits else ""))
        if a.best is None:
            n = sum(n for _, n in a.found_by.values())
            lines.append(f"  no feasible configuration found in {n} case{'s' if n != 1 else ''}; "
                         "try a larger --budget or more --seeds")
            continue
        best = f"  best {a.objective_metric} = {format_value(a.best)}"
        if a.known_optimum is not None:
            gap, tol = a.gap or 0.0, 1e-12 * max(1.0, abs(a.known_optimum))
            if gap < -tol:  # a noisy task: one favourable repeat can beat the optimum, defined on medians
                best += (f" (above the known optimum {format_value(a.known_optimum)}: this trial drew a favourable "
                         "repeat; a recorded table's optimum is the best median among configurations feasible in at "
                         "least half of their repeats)")
            elif gap <= tol:
                best += " (the known optimum)"
            else:
                best += f" (regret {format_value(gap)} to the known optimum {format_value(a.known_optimum)})"
        lines.append(best)
        lines.append(f"  config: {short_config(a.config or {})}")
        measured = [f"{c['metric']} {format_value(a.metrics[c['metric']])} (limit {format_value(c['cap'])})"
                    for c in a.constraints if c["metric"] in a.metrics]
        for key in ("throughput_sps", "device_executed", "precision_executed"):
            if key in a.metrics and key != a.objective_metric:
                measured.append(f"{key} {format_value(a.metrics[key])}")
        if measured:
            lines.append("  measured: " + ", ".join(measured))
        lines.append("  reached by: " + ", ".join(
            f"{opt} in {k}/{n} seed{'s' if n != 1 else ''}" for opt, (k, n) in sorted(a.found_by.items()) if k)
            + (f"; all metrics in {_display_path(a.source)}" if a.source else ""))
    return lines


def next_step_line(out_dir: str) -> str:
    return f"next: deploybench leaderboard {shlex.quote(_display_path(out_dir))}   (scores, statistics and plots of these runs)"
