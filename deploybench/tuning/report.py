"""The report of a ``deploybench tune`` run: ``report.json`` (everything), ``report.md`` (for people),
and two figures: the search over time, and the objective against latency and memory with the caps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .recommendation import CandidateVerdict, RecommendationRule
from ..reporting import format_value, short_config

__all__ = ["write_report", "load_snippet"]


def load_snippet(deployment: dict | None, config: dict) -> str:
    """Python that loads and runs the recommended artefact with the recommended knobs, on zero inputs
    of the measured shapes and dtypes (replace them with real data)."""
    if not deployment:
        return "# the artefact was not kept; rerun with --resume to prepare it again"
    from ..live.inputs import inputs_of

    specs = inputs_of(deployment)
    batch = int(config.get("batch_size", 1))
    write = {"onnxruntime": _onnxruntime_snippet, "openvino": _openvino_snippet}.get(config["backend"], _torch_snippet)
    return write(deployment, config, specs, batch)


def _shape(spec: Any, batch: int) -> str:
    return ", ".join(str(v) for v in (batch, *spec.shape))


def _onnxruntime_snippet(deployment: dict, config: dict, specs: Any, batch: int) -> str:
    half = config["precision"] == "fp16"
    level = "ORT_ENABLE_ALL" if config.get("graph_optimization", "all") == "all" else "ORT_ENABLE_BASIC"
    feed = ", ".join(f"{s.name!r}: np.zeros(({_shape(s, batch)},), dtype=np.{'float16' if half and s.is_float else s.dtype})"
                     for s in specs)
    return "\n".join([
        "import numpy as np",
        "import onnxruntime as ort",
        "",
        "options = ort.SessionOptions()",
        f"options.intra_op_num_threads = {int(config.get('threads') or 1)}",
        "options.inter_op_num_threads = 1",
        f"options.graph_optimization_level = ort.GraphOptimizationLevel.{level}",
        f"session = ort.InferenceSession({deployment['path']!r}, options, providers=['CPUExecutionProvider'])",
        f"inputs = {{{feed}}}",
        "outputs = session.run(None, inputs)",
    ])


def _openvino_snippet(deployment: dict, config: dict, specs: Any, batch: int) -> str:
    hint = str(config.get("performance_hint", "latency")).upper()
    precision = {"fp16": "f16"}.get(str(config["precision"]), "f32")
    shapes = ", ".join(f"{s.name!r}: [{_shape(s, batch)}]" for s in specs)
    feed = ", ".join(f"{s.name!r}: np.zeros(({_shape(s, batch)},), dtype=np.{s.dtype})" for s in specs)
    return "\n".join([
        "import numpy as np",
        "import openvino as ov",
        "",
        "core = ov.Core()",
        f"model = core.read_model({deployment['path']!r})",
        f"model.reshape({{{shapes}}})",
        f"compiled = core.compile_model(model, 'CPU', {{'INFERENCE_NUM_THREADS': {int(config.get('threads') or 1)}, "
        f"'PERFORMANCE_HINT': {hint!r}, 'INFERENCE_PRECISION_HINT': {precision!r}}})",
        f"outputs = compiled({{{feed}}})",
    ])


def _torch_snippet(deployment: dict, config: dict, specs: Any, batch: int) -> str:
    path = deployment["path"]
    half = config["precision"] == "fp16"
    lines = ["import torch", ""]
    if config.get("threads"):
        lines.append(f"torch.set_num_threads({int(config['threads'])})")
    if deployment.get("quant_engine"):
        lines.append(f"torch.backends.quantized.engine = {deployment['quant_engine']!r}")
    if deployment.get("format") == "torchscript":
        lines.append(f"model = torch.jit.load({path!r}).eval()")
    else:
        lines.append(f"model = torch.load({path!r}, weights_only=False).eval()  # a pickled module: trusted file only")
    args = []
    for s in specs:
        dtype = "torch.float16" if half and s.is_float else f"torch.{s.dtype}"
        x = f"torch.zeros({_shape(s, batch)}, dtype={dtype})"
        if config.get("memory_format") == "channels_last" and len(s.shape) == 3:
            x += ".contiguous(memory_format=torch.channels_last)"
        args.append(x)
    if config.get("memory_format") == "channels_last":
        lines.append("model = model.to(memory_format=torch.channels_last)")
    if config["backend"] == "torch_compile":
        lines.append("model = torch.compile(model)  # compiles on the first call (not saved: compile at start-up)")
    lines += [f"inputs = ({', '.join(args)},)",
              "with torch.inference_mode():" if config["backend"] != "torch_compile" else "with torch.no_grad():",
              "    outputs = model(*inputs)"]
    return "\n".join(lines)


def _verdict_row(v: CandidateVerdict, metric: str) -> list:
    med = v.medians
    rng = v.ranges.get("latency_p95_ms")
    return [short_config(v.config), f"{v.feasible}/{v.n}", f"{v.lower_bound:.2f}", "yes" if v.robust else "no",
            format_value(v.median_objective) if v.median_objective is not None else "-",
            f"{format_value(med.get('latency_p95_ms'))} [{format_value(rng[0])}, {format_value(rng[1])}]" if rng else "-",
            format_value(med.get("memory_peak_mb")), format_value(med.get("throughput_sps"))]


def _figures(result: Any, task: Any, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, str] = {}
    metric = task.objective.metric
    sign = task.objective.sign
    trials = result.trials
    if not trials:
        return paths
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    cum, best, xs_t, xs_s, ys, best_t, best_s = 0.0, None, [], [], [], [], []
    for t in trials:
        o = t["outcome"]
        cum += float(o.get("cost_s") or 0.0)
        if o.get("status") == "ok" and o.get("objective") is not None:
            xs_t.append(t["trial"] + 1)
            xs_s.append(cum)
            ys.append(o["objective"])
            if best is None or sign * o["objective"] > sign * best:
                best = o["objective"]
        best_t.append(best)
        best_s.append(cum)
    cum_all = list(best_s)
    others = [(i + 1, cum_all[i]) for i, t in enumerate(trials)
              if not (t["outcome"].get("status") == "ok" and t["outcome"].get("objective") is not None)]
    for ax, xs, steps, label, col in ((axes[0], xs_t, list(range(1, len(trials) + 1)), "trial", 0),
                                       (axes[1], xs_s, best_s, "measured seconds (cumulative cost)", 1)):
        ax.scatter(xs, ys, s=18, color="tab:blue", label="feasible trial")
        ax.step(steps, best_t, where="post", color="tab:orange", label="best so far")
        if others:  # every trial is on the x axis: the ones without a feasible value as ticks along the bottom
            ax.scatter([o[col] for o in others], [0.02] * len(others), marker="|", s=80, color="tab:gray",
                       transform=ax.get_xaxis_transform(), label="infeasible, early-stopped or crashed")
        ax.set_xlim(left=0.5 if col == 0 else 0.0, right=(len(trials) + 0.5) if col == 0 else max(cum_all[-1], 1e-9) * 1.02)
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"deploybench tune: {task.metadata.description}", fontsize=9)
    fig.tight_layout()
    paths["trials"] = str(out / "trials.png")
    fig.savefig(paths["trials"], dpi=110)
    plt.close(fig)

    latency_metric = task.spec.latency_cap[0] if task.spec.latency_cap else "latency_p95_ms"
    panels = [(latency_metric, task.spec.latency_cap[1] if task.spec.latency_cap else None),
              ("memory_peak_mb", task.spec.memory_mb)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = {"ok": ("tab:green", "o", "feasible"), "infeasible": ("tab:red", "x", "infeasible")}
    for ax, (x_metric, cap) in zip(axes, panels):
        seen = set()
        # the objective against each limit; when the objective is that limit's metric (a latency
        # objective), the panel shows what latency buys instead: throughput
        y_metric = "throughput_sps" if x_metric == metric else metric
        for t in trials:
            o = t["outcome"]
            m = o.get("metrics") or {}
            y = m.get(y_metric)
            if m.get(x_metric) is None or y is None or o["status"] not in styles:
                continue
            color, marker, label = styles[o["status"]]
            ax.scatter(m[x_metric], y, color=color, marker=marker, s=22, label=None if label in seen else label)
            seen.add(label)
        if result.recommended is not None and result.recommended.medians.get(x_metric) is not None:
            y = result.recommended.medians.get(y_metric) if y_metric != metric else result.recommended.median_objective
            if y is not None:
                ax.scatter(result.recommended.medians[x_metric], y, marker="*", s=220, color="gold", edgecolor="black",
                           label="recommended (median of repeats)", zorder=5)
        if cap is not None:
            ax.axvline(cap, color="black", linestyle="--", linewidth=1, label=f"cap {cap:g}")
        ax.set_xlabel(x_metric)
        ax.set_ylabel(y_metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    paths["tradeoff"] = str(out / "tradeoff.png")
    fig.savefig(paths["tradeoff"], dpi=110)
    plt.close(fig)
    return paths


def _cell(value: Any) -> str:
    """A table cell: the value rounded, ``-`` where nothing was measured."""
    return "-" if value is None else format_value(value)


_STATUS_WORDS = {"recommended": "recommended", "no_feasible": "no feasible configuration",
                 "no_robust": "no robust candidate"}


def _status_text(result: Any) -> str:
    """The status line: the message when it starts with the status's own words, else both."""
    words = _STATUS_WORDS.get(result.status, result.status)
    return result.message if result.message.startswith(words) else f"{words}: {result.message}"


def _redone(result: Any) -> int:
    n = 0
    for t in result.trials:
        n += max(0, int((t["outcome"].get("metrics") or {}).get("measurement_attempts") or 1) - 1)
    for v in result.candidates:
        for r in v.repeats:
            n += max(0, int((r.get("metrics") or {}).get("measurement_attempts") or 1) - 1)
    return n


def _expanded_trial(trial: dict, task: Any) -> dict:
    """A trial with its configuration in deployment terms (``backend``, ``precision``); where the search
    used a joint ``runtime`` parameter, the configuration it proposed stays as ``search_config``."""
    config = task.grid.expand(trial["config"])
    return trial if config == trial["config"] else {**trial, "config": config, "search_config": trial["config"]}


def write_report(result: Any, task: Any, rule: RecommendationRule) -> dict[str, str]:
    """Write ``report.json``, ``report.md`` and the figures into ``result.out_dir``; returns their paths."""
    out = Path(result.out_dir)
    result.redone = _redone(result)
    figures = _figures(result, task, out)
    metric = task.objective.metric
    rec = result.recommended
    data = {
        "status": result.status, "message": result.message, "task": task.metadata.description,
        "objective": {"metric": metric, "direction": task.objective.direction},
        "constraints": [c.to_json() for c in task.constraints], "device_profile": task.device_profile.to_json(),
        "spec": task.spec.to_json(), "rule": rule.describe(), "notes": result.notes,
        "measurements_redone_by_contention_guard": result.redone, "search_error": result.search_error,
        "recommended": rec.to_json() if rec else None,
        "alternatives": {k: v.to_json() for k, v in result.alternatives.items()},
        "candidates": [v.to_json() for v in result.candidates],
        "deployment": result.deployment, "trials": [_expanded_trial(t, task) for t in result.trials], "figures": figures,
        "exclusions": [e.to_json() for e in task.exclusions],
    }
    paths = {"json": str(out / "report.json"), "markdown": str(out / "report.md"), **figures}
    Path(paths["json"]).write_text(json.dumps(data, indent=1, default=str, allow_nan=False))
    lines = [f"# deploybench tune: {task.metadata.description}", "",
             f"**Status:** {_status_text(result)}", ""]
    if rec is not None:
        warnings = [n for n in result.notes if n.startswith("warning:")]
        lines += ["## Recommended deployment", "", *[f"> **{w}**" for w in warnings], *([""] if warnings else []),
                  "```", json.dumps(rec.config, indent=1), "```", "",
                  f"- {metric}: {format_value(rec.median_objective)} (median of {rec.n} repeats"
                  + (f", range [{format_value(rec.ranges[metric][0])}, {format_value(rec.ranges[metric][1])}])"
                     if metric in rec.ranges else ")"),
                  f"- feasible in {rec.feasible}/{rec.n} fresh re-measurements; P(feasible) >= {rec.lower_bound:.2f} "
                  f"at {rule.confidence:.0%} confidence (one-sided Clopper-Pearson)"]
        for name, values in rec.ranges.items():
            if name == metric:
                continue
            lines.append(f"- {name}: median {format_value(rec.medians[name])}, range over repeats "
                         f"[{format_value(values[0])}, {format_value(values[1])}]")
        lines += ["", "### What was traded", ""]
        if not result.alternatives:
            lines.append("No other robust candidate is safer or has a higher throughput.")
        for role, v in result.alternatives.items():
            words = {"next_best": "next best robust", "safer": "safer (larger margin to the latency cap)",
                     "higher_throughput": "higher throughput (more images per second, each batch may take longer)"
                     }[role]
            lines.append(f"- {words}: {short_config(v.config)}: {metric} {format_value(v.median_objective)}, p95 "
                         f"{format_value(v.medians.get('latency_p95_ms'))} ms, throughput "
                         f"{format_value(v.medians.get('throughput_sps'))}/s, {v.feasible}/{v.n} feasible")
        lines += ["", "### How to load it", "", "```python", load_snippet(result.deployment, rec.config), "```", ""]
    lines += ["## Candidates", "", f"Rule: {rule.describe()}.", "",
              tabulate([_verdict_row(v, metric) for v in result.candidates],
                       headers=["configuration", "feasible", "P lower", "robust", f"median {metric}",
                                "p95 ms [min, max]", "memory MB", "throughput/s"], tablefmt="github")
              if result.candidates else "(none: no feasible trial)", ""]
    for v in result.candidates:
        if v.reasons:
            lines.append(f"- {short_config(v.config)}: {'; '.join(v.reasons)}")
    lines += ["", "## Search", "", f"Measurements redone by the contention guard: {result.redone}.", ""]
    if task.exclusions:
        lines += ["Left out before the search (known not to run here, so no trial was spent on them):", "",
                  *[f"- {e.describe()}" for e in task.exclusions], ""]
    if result.search_error:
        lines += [f"The search ended with an error: {result.search_error.get('message', result.search_error)}", ""]
    for name, path in figures.items():
        lines.append(f"![{name}]({Path(path).name})")
    rows = []
    for t in result.trials:
        o = t["outcome"]
        m = o.get("metrics") or {}
        status = "early stop" if o.get("early_stopped") else o["status"]
        if o.get("error"):
            status += f" ({o['error'].get('kind')})"
        reason = ""
        if o.get("error"):
            message = str(o["error"].get("message") or "").strip()
            reason = next((ln for ln in message.splitlines() if ln.strip()), "")[:120]
        rows.append([t["trial"] + 1, short_config(task.grid.expand(t["config"])), status, _cell(o.get("objective")),
                     _cell(m.get("latency_p95_ms")), _cell(m.get("memory_peak_mb")),
                     _cell(m.get("throughput_sps")), _cell(o.get("cost_s")), reason or "-"])
    lines += ["", tabulate(rows, headers=["#", "configuration", "outcome", metric, "p95 ms", "memory MB",
                                          "throughput/s", "cost s", "error"], tablefmt="github"), ""]
    Path(paths["markdown"]).write_text("\n".join(lines))
    return paths
