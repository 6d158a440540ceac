"""``deploybench probe``: repeat configurations in fresh processes and measure how often their
feasibility flips.

Near a latency cap the same configuration can be feasible in one session and infeasible in the next.
Following the "Hidden Device Heterogeneity" study of int8 deployment, the **feasibility rate** phi is
the share of a configuration's repeats that meet the caps, and the **flip rate** is
``min(phi, 1 - phi)`` (0: deterministic, 0.5: a coin toss). Each repeat here is a full live
measurement in fresh worker processes (the suite's rules: artefact loaded alone, memory limit,
contention guard), so the rates include load, scheduling and frequency variance between sessions,
not only jitter inside one process.

The repeats are written as a table chunk (``probe.jsonl``: the same header and lines as ``deploybench
record`` writes), so a probe of a table's configurations on the same device is extra repeats for that
table: ``deploybench table pack TABLE_CHUNK probe.jsonl --out ...``. Contaminated repeats are kept as
evidence and never counted. A rerun with the same ``--out`` continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, median, pstdev
from typing import Any, Callable, Mapping, Sequence

from ..locking import exclusive_lock
from ..reporting import short_config
from .recommendation import clopper_pearson_two_sided, flip_rate

__all__ = ["ProbeCaps", "ProbeSummary", "ProbeResult", "probe", "select_near_caps", "summarize_repeats",
           "configs_from_tune"]


@dataclass(frozen=True)
class ProbeCaps:
    """The caps a repeat is judged against: a latency metric and cap, and optionally a memory cap."""

    latency_metric: str
    latency_cap_ms: float
    memory_cap_mb: float | None = None

    def feasible(self, measurement: Mapping[str, Any]) -> bool:
        if measurement.get("status") != "ok":
            return False
        m = measurement.get("metrics") or {}
        value = m.get(self.latency_metric)
        if value is None or value > self.latency_cap_ms:
            return False
        mem = m.get("memory_peak_mb")
        return self.memory_cap_mb is None or (mem is not None and mem <= self.memory_cap_mb)

    def describe(self) -> str:
        text = f"{self.latency_metric} <= {self.latency_cap_ms:g} ms"
        return text + (f", memory_peak_mb <= {self.memory_cap_mb:g} MB" if self.memory_cap_mb else "")


@dataclass
class ProbeSummary:
    """One configuration's repeats: feasibility, flip rate with interval, latency spread, devices."""

    key: str
    config: dict
    n: int
    feasible: int
    phi: float | None
    phi_interval: tuple[float, float]
    flip_rate: float | None
    flip_interval: tuple[float, float]
    latency: dict
    distance_to_cap: float | None
    devices: dict
    precisions: dict
    statuses: dict
    contaminated: int
    redone: int
    #: every clean repeat in order: status, feasible, the latency metric, executed device and precision
    per_repeat: list = field(default_factory=list)

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["phi_interval"] = [round(v, 4) for v in self.phi_interval]
        data["flip_interval"] = [round(v, 4) for v in self.flip_interval]
        return data


@dataclass
class ProbeResult:
    """What :func:`probe` measured: a summary per configuration, and where the files are."""

    caps: ProbeCaps
    summaries: list[ProbeSummary] = field(default_factory=list)
    out_dir: str = ""
    paths: dict[str, str] = field(default_factory=dict)
    new: int = 0


def summarize_repeats(key: str, config: Mapping[str, Any], measurements: Sequence[Mapping[str, Any]],
                      caps: ProbeCaps, confidence: float = 0.95) -> ProbeSummary:
    """Feasibility and flip rate of one configuration's clean repeats (contaminated ones are counted apart)."""
    clean = [m for m in measurements if not m.get("contaminated")]
    n = len(clean)
    k = sum(1 for m in clean if caps.feasible(m))
    rho, rho_ci = flip_rate(k, n, confidence)
    values = [float(m["metrics"][caps.latency_metric]) for m in clean
              if m.get("status") == "ok" and (m.get("metrics") or {}).get(caps.latency_metric) is not None]
    latency: dict[str, Any] = {"metric": caps.latency_metric, "n": len(values)}
    if values:
        s = sorted(values)
        latency.update(median=round(median(s), 4), mean=round(mean(s), 4), sd=round(pstdev(s), 4) if len(s) > 1 else 0.0,
                       min=round(s[0], 4), max=round(s[-1], 4), q25=round(s[len(s) // 4], 4),
                       q75=round(s[(3 * len(s)) // 4 if len(s) > 1 else 0], 4), values=[round(v, 4) for v in values])
        latency["cv"] = round(latency["sd"] / latency["mean"], 4) if latency["mean"] else None
    distance = (latency["median"] - caps.latency_cap_ms) / caps.latency_cap_ms if values else None
    devices = Counter(str((m.get("metrics") or {}).get("device_executed") or "unknown") for m in clean)
    precisions = Counter(str((m.get("metrics") or {}).get("precision_executed") or "unknown") for m in clean)
    statuses = Counter(str(m.get("status")) for m in clean)
    per_repeat = [{"status": m.get("status"), "feasible": caps.feasible(m),
                   caps.latency_metric: (m.get("metrics") or {}).get(caps.latency_metric),
                   "device_executed": (m.get("metrics") or {}).get("device_executed"),
                   "precision_executed": (m.get("metrics") or {}).get("precision_executed"),
                   "attempts": int(m.get("attempts") or 1)} for m in clean]
    return ProbeSummary(
        key=key, config=dict(config), n=n, feasible=k, phi=(k / n) if n else None,
        phi_interval=clopper_pearson_two_sided(k, n, confidence), flip_rate=rho, flip_interval=rho_ci,
        latency=latency, distance_to_cap=None if distance is None else round(distance, 4), devices=dict(devices),
        precisions=dict(precisions), statuses=dict(statuses),
        contaminated=sum(1 for m in measurements if m.get("contaminated")),
        redone=sum(max(0, int(m.get("attempts") or 1) - 1) for m in measurements), per_repeat=per_repeat)


def select_near_caps(table: Any, caps: ProbeCaps, n: int, models: Sequence[str] | None = None,
                     backends: Sequence[str] | None = None, precisions: Sequence[str] | None = None) -> list[dict]:
    """The ``n`` configurations of a recorded table whose median latency lies nearest the cap (ok
    measurements only; ``models``, ``backends`` and ``precisions`` narrow the choice)."""
    scored = []
    for key in table.grid_keys():
        reps = [m for m in table.measurements.get(key, []) if m.get("status") == "ok" and not m.get("contaminated")]
        values = [(m.get("metrics") or {}).get(caps.latency_metric) for m in reps]
        values = [float(v) for v in values if v is not None]
        if not values:
            continue
        config = dict(table.configs.get(key) or json.loads(key))
        if (models and config.get("model") not in models) or (backends and config.get("backend") not in backends) \
                or (precisions and config.get("precision") not in precisions):
            continue
        scored.append((abs(median(values) - caps.latency_cap_ms) / caps.latency_cap_ms, key, config))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [c for _, _, c in scored[:n]]


def configs_from_tune(tune_dir: str | os.PathLike[str], n: int) -> tuple[list[dict], dict]:
    """The ``n`` configurations of a ``deploybench tune`` run nearest its latency cap, and its spec."""
    from ..results import read_case_file

    root = Path(tune_dir)
    try:
        saved = json.loads((root / "spec.json").read_text())
    except (OSError, ValueError):
        raise ValueError(f"{root} is not a deploybench tune folder (no readable spec.json)") from None
    spec = saved["spec"]
    metric, cap = ("latency_p95_ms", spec["p95_ms"]) if spec.get("p95_ms") else ("latency_p99_ms", spec.get("p99_ms"))
    if cap is None:
        raise ValueError(f"the tune run in {root} has no latency cap to probe around")
    cases = sorted((root / "search").rglob("*.jsonl"))
    if not cases:
        raise ValueError(f"{root} holds no search trials yet")
    from ..device_tables.grid import expand_config

    runtimes = saved.get("runtimes") or {}  # a search space without the combinations known not to run
    scored = {}
    for t in read_case_file(cases[0]).trials:
        value = (t["outcome"].get("metrics") or {}).get(metric)
        if value is not None and not t["outcome"].get("early_stopped"):
            config = expand_config(t["config"], runtimes)
            key = json.dumps(config, sort_keys=True)
            scored[key] = (abs(float(value) - cap) / cap, config)
    ranked = sorted(scored.values(), key=lambda t: t[0])
    return [c for _, c in ranked[:n]], saved


def _header(configs: Sequence[Mapping[str, Any]], name: str, device_profile: Any, base: Mapping[str, Any] | None,
            caps: ProbeCaps, repeats: int) -> dict:
    """The chunk header: the table's own (so the chunk packs with it) or a grid of the probed configurations."""
    from ..device_tables.grid import DeploymentGrid
    from ..machine import library_versions, machine_info

    note = (f"deploybench probe: {repeats} repeats per configuration in fresh processes, judged against "
            f"{caps.describe()}")
    if base is not None:
        provenance = {**(base.get("provenance") or {}), "probe": note}
        return {"name": base.get("name", name), "space": base["space"], "space_signature": base["space_signature"],
                "provenance": provenance}
    domains: dict[str, list] = {}
    for c in configs:
        for k, v in c.items():
            domains.setdefault(k, [])
            if v not in domains[k]:
                domains[k].append(v)
    space = DeploymentGrid.from_domains(domains).space()
    info = machine_info()
    return {"name": name, "space": space.to_json(), "space_signature": space.signature(),
            "provenance": {"device": "cpu", "device_profile": device_profile.to_json(),
                           "device_name": f"{device_profile.name}: {device_profile.description}, on {info['cpu']}",
                           "cpu": info["cpu"], "cpu_count": info["cpu_count"], "platform": info["platform"],
                           "versions": library_versions(), "probe": note}}


def probe(configs: Sequence[Mapping[str, Any]], caps: ProbeCaps, out_dir: str | os.PathLike[str], *,
          repeats: int = 20, device_profile: Any = None, sources: Mapping[str, Any] | None = None,
          table_header: Mapping[str, Any] | None = None, time_limit_s: float = 120.0, lock: str | None = None,
          weights: str = "auto", profile_fn: Callable[[Any], Any] | None = None,
          on_line: Callable[[str], None] = print) -> ProbeResult:
    """Measure each configuration until it has ``repeats`` clean repeats (resuming ``out_dir/probe.jsonl``),
    then summarise, plot and write ``probe.json`` and ``probe.md``.

    Repeats are interleaved (one of each configuration per round), so a slow drift of the machine
    spreads over every configuration instead of biasing one."""
    from ..live.devices import get_device_profile
    from ..live.profiler import ProfileRequest
    from ..device_tables.table import load_table, open_table_for_append

    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if not configs:
        raise ValueError("nothing to probe: no configuration given or selected")
    device_profile = device_profile or get_device_profile("host")
    sources = dict(sources or {})
    out = Path(out_dir).resolve()  # workers run in their own folders: every path they get is absolute
    out.mkdir(parents=True, exist_ok=True)
    chunk = out / "probe.jsonl"
    header = _header(configs, "probe", device_profile, table_header, caps, repeats)
    fh = open_table_for_append(chunk, header)
    existing = load_table(chunk)
    space = existing.space
    keyed = [(space.key(dict(c)), dict(c)) for c in configs]
    done: dict[str, list[dict]] = {k: list(existing.measurements.get(k, [])) for k, _ in keyed}
    measure = profile_fn
    if measure is None:
        from ..live.profiler import profile as measure
    result = ProbeResult(caps=caps, out_dir=str(out))
    artefacts = out / "artefacts"
    try:
        for round_no in range(2 * repeats):  # contaminated repeats are redone, at most once per repeat
            pending = [(k, c) for k, c in keyed if sum(1 for m in done[k] if not m.get("contaminated")) < repeats
                       and len(done[k]) < 2 * repeats]
            if not pending:
                break
            for key, config in pending:
                source = sources.get(str(config.get("model")))
                request = ProfileRequest(
                    config=config, latency_cap_ms=caps.latency_cap_ms, latency_metric=caps.latency_metric,
                    early_stop_factor=5.0, time_limit_s=time_limit_s, device="cpu", weights=weights,
                    device_profile=device_profile.name, memory_limit_mb=device_profile.memory_mb,
                    artefact_cache=str(artefacts), source=source.to_json() if source is not None and source.custom else None)
                with exclusive_lock(lock):
                    m = measure(request)
                data = m.to_dict() if hasattr(m, "to_dict") else dict(m)
                fh.write(json.dumps({"type": "measurement", "key": key, "config": config, "repeat": len(done[key]),
                                     "pass": round_no, "load_avg_1m": round(os.getloadavg()[0], 2),
                                     "recorded_at": round(time.time()), "time_limit_s": time_limit_s,
                                     "measurement": data}, allow_nan=False) + "\n")
                fh.flush()
                done[key].append(data)
                result.new += 1
                clean = sum(1 for d in done[key] if not d.get("contaminated"))
                value = (data.get("metrics") or {}).get(caps.latency_metric)
                verdict = "feasible" if caps.feasible(data) else ("early stop" if data["status"] == "early_stopped"
                                                                  else "infeasible" if data["status"] == "ok"
                                                                  else data["status"])
                on_line(f"{short_config(config)}: repeat {clean}/{repeats} {verdict}"
                        + (f" {caps.latency_metric}={value:.2f}" if value is not None else "")
                        + (f" (redone x{int(data['attempts']) - 1}: other work disturbed the measurement)"
                           if int(data.get("attempts") or 1) > 1 and not data.get("contaminated") else "")
                        + (" (contaminated: redone)" if data.get("contaminated") else ""))
    finally:
        fh.close()
    result.summaries = [summarize_repeats(k, c, done[k], caps) for k, c in keyed]
    result.paths = _write(result, out)
    return result


def _write(result: ProbeResult, out: Path) -> dict[str, str]:
    from tabulate import tabulate

    from ..reporting import short_config

    paths = {"chunk": str(out / "probe.jsonl"), "json": str(out / "probe.json"), "markdown": str(out / "probe.md")}
    Path(paths["json"]).write_text(json.dumps({"caps": result.caps.__dict__,
                                               "summaries": [s.to_json() for s in result.summaries]}, indent=1))
    figure = _figure(result, out)
    if figure:
        paths["figure"] = figure
    rows = []
    for s in result.summaries:
        lat = s.latency
        rows.append([short_config(s.config), f"{s.feasible}/{s.n}",
                     "-" if s.phi is None else f"{s.phi:.2f} [{s.phi_interval[0]:.2f}, {s.phi_interval[1]:.2f}]",
                     "-" if s.flip_rate is None else f"{s.flip_rate:.0%} [{s.flip_interval[0]:.0%}, {s.flip_interval[1]:.0%}]",
                     f"{lat['median']:.2f} ± {lat['sd']:.2f}" if lat.get("n") else "-",
                     f"{lat['min']:.2f}..{lat['max']:.2f}" if lat.get("n") else "-",
                     "-" if s.distance_to_cap is None else f"{s.distance_to_cap:+.0%}",
                     ", ".join(f"{k} x{v}" for k, v in s.devices.items()), s.redone, s.contaminated])
    text = [f"# deploybench probe: {result.caps.describe()}", "",
            "phi: share of clean repeats that meet the caps (95 % Clopper-Pearson interval); flip rate "
            "min(phi, 1 - phi) with the interval it takes over phi's; latency: median ± sd over repeats of "
            f"{result.caps.latency_metric}; distance: median relative to the cap; device: where each repeat executed; "
            "redone: measurements the contention guard took again because other work disturbed them; contaminated: "
            "repeats disturbed in every attempt (not counted in phi).",
            "", tabulate(rows, headers=["configuration", "feasible", "phi", "flip rate", "latency ms", "range",
                                        "distance", "device", "redone", "contaminated"], tablefmt="github"), ""]
    if figure:
        text.append(f"![flip rate against distance to the cap]({Path(figure).name})")
    Path(paths["markdown"]).write_text("\n".join(text) + "\n")
    return paths


def _figure(result: ProbeResult, out: Path) -> str | None:
    points = [s for s in result.summaries if s.flip_rate is not None and s.distance_to_cap is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for s in points:
        lo, hi = s.flip_interval
        ax.errorbar(100 * s.distance_to_cap, s.flip_rate, yerr=[[s.flip_rate - lo], [hi - s.flip_rate]], fmt="o",
                    capsize=3, label=f"{s.config.get('model')} {s.config.get('backend')} {s.config.get('precision')} "
                                     f"b{s.config.get('batch_size')}")
    ax.axvline(0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel(f"median {result.caps.latency_metric} relative to the cap (%)")
    ax.set_ylabel("flip rate min(phi, 1 - phi)")
    ax.set_ylim(-0.02, 0.52)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    path = str(out / "flip-rates.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
