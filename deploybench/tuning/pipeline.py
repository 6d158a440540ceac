"""``deploybench.tune``: search a deployment of your model, then recommend one that survives re-measurement.

Steps (each kept on disk under ``out_dir``, so an interrupted run resumes with ``resume=True``):

1. **Pre-flight**: every model is prepared once at fp32 in its own worker (import, build, export): a
   failing import path, a factory that raises or an ONNX file ONNX Runtime cannot load stops here
   with the reason, before any search; so does a model whose parameters alone exceed the device memory.
2. **Search**: the optimizer (default: the leaderboard's best built-in) runs ``budget`` live trials
   through the suite's runner (``search/``: the case file, resumable like ``deploybench run``).
3. **Re-measurement**: the top candidates are measured ``repeats`` more times in fresh processes
   (``repeats.jsonl``, appended as they finish).
4. **Recommendation** by :mod:`deploybench.tuning.recommendation`; the report (``report.json``,
   ``report.md``, figures) and the recommended artefact (``deployment/``) are written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .recommendation import CandidateVerdict, RecommendationRule, judge_candidate, recommend, select_candidates
from ..task import EvalContext
from .tune_task import TuneInputError, TuneSpec, TuneTask, accuracy_measurable

__all__ = ["tune", "TuneResult"]


@dataclass
class TuneResult:
    """What :func:`tune` found. ``status``: ``recommended``, ``no_feasible`` (no trial met the caps) or
    ``no_robust`` (feasible trials, but no candidate held its feasibility over the repeats)."""

    status: str
    out_dir: str
    message: str
    objective: dict
    trials: list[dict] = field(default_factory=list)
    candidates: list[CandidateVerdict] = field(default_factory=list)
    recommended: CandidateVerdict | None = None
    alternatives: dict[str, CandidateVerdict] = field(default_factory=dict)
    redone: int = 0
    notes: list[str] = field(default_factory=list)
    search_error: dict | None = None
    deployment: dict | None = None
    report_paths: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "recommended"


#: keyword names of the command line's flags that differ from the spec's field names
_KEYWORD_ALIASES = {"input": "inputs", "data": "data_dir", "min_throughput": "min_throughput_sps",
                    "time_limit": "time_limit_s"}


def _model_text(model: Any, out_dir: Path) -> str:
    """What the command line would say for a model given to :func:`tune`: a text as it is; a function by
    its import path; a ``torch.nn.Module`` object saved whole into ``out_dir/modules/`` (trials measure
    it in fresh processes, so it travels as a file)."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    if callable(model) and not hasattr(model, "state_dict"):
        module, name = getattr(model, "__module__", None), getattr(model, "__qualname__", "")
        if not module or module == "__main__" or "<" in name:
            raise TuneInputError(f"the factory {name or model!r} is defined in __main__ (or is a lambda or a local "
                                 "function): fresh worker processes cannot import it; define it in a module")
        return f"{module}:{name}"
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        if type(model).__module__ == "__main__":
            raise TuneInputError(f"{type(model).__name__} is defined in __main__: fresh worker processes cannot "
                                 "import its class to load it; define it in a module (or pass a factory)")
        folder = out_dir.resolve() / "modules"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{type(model).__name__}.pt"
        torch.save(model, path)
        return str(path)
    raise TuneInputError(f"cannot tune a {type(model).__name__}: give a torchvision name, package.module:function, "
                         "a .pt or .onnx file, a factory function or a torch.nn.Module")


def _sources(spec: TuneSpec) -> list[Any]:
    from ..live.sources import SourceError, check_source, parse_model_source

    sources = []
    for text in spec.models:
        try:
            source = parse_model_source(text, spec.input_shape, inputs=spec.inputs)
            check_source(source)
        except SourceError as exc:
            raise TuneInputError(str(exc)) from None
        sources.append(source)
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise TuneInputError(f"the same model is named twice: {labels}")
    return sources


def _preflight(task: TuneTask, prepare_fn: Callable[[Any], dict], on_line: Callable[[str], None],
               smoke: bool = False) -> dict[str, dict]:
    """Prepare each model at fp32 once, and with ``smoke`` run it once: a model that cannot be built,
    exported, loaded or run on its declared input stops the run before the search. Returns each model's
    artefact description (what the exclusions read: the share of FLOPs in Linear layers)."""
    described: dict[str, dict] = {}
    for label, source in task.sources.items():
        backend = _fp32_backend(task, source)
        config = {"model": label, "backend": backend, "precision": "fp32", "batch_size": task.grid.batch_sizes[0]}
        request = task.request_for(config)
        on_line(f"pre-flight: preparing {label} ({backend}, fp32) ...")
        from ..locking import exclusive_lock

        with exclusive_lock(task.spec.lock):
            record = prepare_fn(request)
        if record.get("status") != "ok":
            message = str((record.get("error") or {}).get("message") or "no reason given")
            first = next((ln for ln in message.splitlines() if ln.strip()), message).strip()
            first = re.sub(r"^\[\w+\] (SourceError|ValueError): ", "", first)  # the worker's stage tag
            raise TuneInputError(f"cannot prepare {label}: {first.strip()}")
        art = record.get("artefact") or {}
        described[label] = art
        param_mb = art.get("param_mb")
        memory = task.device_profile.memory_mb
        if memory and param_mb and param_mb > memory:
            raise TuneInputError(f"{label} is too large for the device: its parameters alone take {param_mb:.0f} MB, "
                                 f"the device {task.device_profile.name} has {memory:g} MB (--device-memory-mb)")
        if smoke:
            _smoke_run(task, label, request, on_line)
    return described


#: options a resumed run may change: how long to search and how to recommend, not what is measured or judged
_RESUMABLE_CHANGES = frozenset({"budget", "budget_seconds", "candidates", "repeats", "confidence", "min_feasible_rate",
                                "lock", "time_limit_s"})
#: the flag of each spec field whose name differs from its flag (the rest are ``--`` + the name, dashed)
_FLAGS = {"models": "MODEL", **{field: "--" + flag.replace("_", "-") for flag, field in _KEYWORD_ALIASES.items()}}


def _check_resumable(spec: TuneSpec, spec_path: Path) -> None:
    """Refuse, in the command line's terms, a resume whose options change what the recorded trials mean."""
    try:
        saved = json.loads(spec_path.read_text()).get("spec") or {}
    except (OSError, ValueError):
        return  # an unreadable spec.json: the runner's own identity check still protects the records
    now = spec.to_json()
    changed = [name for name in now if name not in _RESUMABLE_CHANGES and name in saved and saved[name] != now[name]]
    if not changed:
        return

    def shown(value: Any) -> str:
        if value is None:
            return "not given"
        return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)

    parts = [f"{_FLAGS.get(n, '--' + n.replace('_', '-'))} was {shown(saved[n])}, now {shown(now[n])}" for n in changed]
    caps = {"p95_ms", "p99_ms", "memory_mb", "min_throughput_sps"} & set(changed)
    why = ("every recorded trial was judged, and stopped early, against the old caps" if caps else
           "the recorded trials measured a different search")
    raise TuneInputError(f"cannot resume {spec_path.parent}: {'; '.join(parts)}. {why[0].upper() + why[1:]}, so they "
                         "cannot continue this search. Start a new one with another --out (or --overwrite to replace "
                         "this one); --budget, --candidates, --repeats, --confidence and --min-feasible-rate may "
                         "change on --resume")


#: accuracy on your data is measured on at most this many samples and this many bytes of inputs
ACCURACY_SAMPLES = 500
ACCURACY_BYTES = 32 * 2**20


def _sample_of_your_data(task: TuneTask, out: Path, on_line: Callable[[str], None]) -> str:
    """Check ``--data`` against the model's inputs (here, once: a mismatch is said before any trial) and
    keep its first samples in ``out/data.npz``, the file every trial reads: a worker never loads more
    than a small sample of your data into the device's memory."""
    import numpy as np

    from ..live.user_data import UserDataError, load_user_data

    specs = [s.input_specs for s in task.sources.values()]
    if any(sp != specs[0] for sp in specs):
        raise TuneInputError("--data with several models needs models with the same inputs; tune them apart")
    source = next(iter(task.sources.values()))
    try:
        inputs, labels = load_user_data(str(task.spec.data_dir), specs[0], source.sys_path or os.getcwd())
    except UserDataError as exc:
        raise TuneInputError(str(exc)) from None
    per_sample = sum(a[:1].nbytes for a in inputs) or 1
    n = max(1, min(len(inputs[0]), ACCURACY_SAMPLES, ACCURACY_BYTES // per_sample))
    arrays = {s.name: a[:n] for s, a in zip(specs[0], inputs)}
    if labels is not None:
        arrays["labels"] = labels[:n]
    path = out / "data.npz"
    np.savez(path, **arrays)
    on_line(f"data: {n} samples of {task.spec.data_dir} "
            + ("with labels: accuracy is top-1" if labels is not None else
               "without labels: accuracy is agreement with the fp32 model's top-1")
            + f"; the first ones calibrate int8_static (kept in {path.name})")
    return str(path)


def _fp32_reference(task: TuneTask, out: Path, on_line: Callable[[str], None]) -> dict[str, dict]:
    """Each model's fp32 top-1 classes (and accuracy, with labels) on the sample of your data, measured
    once (``reference.json``, kept for a resumed run): what every trial's accuracy drop is against."""
    from dataclasses import replace

    import numpy as np

    path = out / "reference.json"
    if path.exists():
        return json.loads(path.read_text())
    labels = None
    with np.load(task.data_path) as data:
        if "labels" in data.files:
            labels = data["labels"]
    reference = {}
    for label, source in task.sources.items():
        backend = _fp32_backend(task, source)
        config = {"model": label, "backend": backend, "precision": "fp32",
                  "batch_size": source.fixed_batch or task.grid.batch_sizes[0], "threads": 1}
        on_line(f"data: measuring the fp32 reference of {label} on your data ({backend})")
        request = replace(task.request_for(config, early_stop=False), memory_limit_mb=None)
        data = task.measure(request)
        data = data.to_dict() if hasattr(data, "to_dict") else dict(data)
        preds = (data.get("metrics") or {}).get("predictions")
        if data.get("status") != "ok" or preds is None:
            first = _first_line((data.get("error") or {}).get("message") or data.get("status"))
            raise TuneInputError(f"cannot run {label} (fp32) on your data: {first[:300]}")
        accuracy = None if labels is None else round(float(np.mean(np.asarray(preds) == labels)), 6)
        reference[label] = {"predictions": preds, "accuracy": accuracy, "config": config}
        if accuracy is not None:
            on_line(f"data: {label} fp32 top-1 on your data: {accuracy:.4f}")
    path.write_text(json.dumps(reference))
    return reference


def _fp32_backend(task: TuneTask, source: Any) -> str:
    """Where a model's fp32 pre-flight and reference run: eager PyTorch when searched, else ONNX Runtime."""
    return "onnxruntime" if source.kind == "onnx" or "pytorch_eager" not in task.grid.backends else "pytorch_eager"


def _first_line(message: Any) -> str:
    """The first non-empty line of a worker's error message, without its stage tag (``[measure] ``)."""
    text = str(message or "").strip()
    return re.sub(r"^\[\w+\] ", "", next((ln for ln in text.splitlines() if ln.strip()), text).strip())


def _exclusions(task: TuneTask, described: dict[str, dict], probe: bool,
                on_line: Callable[[str], None]) -> list:
    """The combinations known not to run (:mod:`deploybench.tuning.exclusions`); ``probe`` runs the
    one-time runtime probe (live runs only)."""
    from .exclusions import known_exclusions

    def probe_once(device: str, backend: str, precision: str) -> dict:
        from ..live.doctor import probe_path

        on_line(f"pre-flight: does {backend} {precision} run on {device} here? (probed once a day)")
        return probe_path(device, backend, precision)

    device = task.spec.device if task.spec.device in ("cpu", "cuda") else _auto_device()
    grid, sources = task.grid, list(task.sources.values())
    return known_exclusions(sources, grid.backends, grid.precisions, grid.graph_optimizations, device, described,
                            probe_once if probe else None,
                            unmeasured_allowed=accuracy_measurable(task.spec, sources)
                            or task.spec.allow_unmeasured_accuracy)


def _auto_device() -> str:
    from ..live.doctor import probe_devices

    return probe_devices()[-1]


def _smoke_run(task: TuneTask, label: str, request: Any, on_line: Callable[[str], None]) -> None:
    """Run the prepared model once (batch 1, or the ONNX file's fixed batch), without a memory limit: a
    model that cannot take the declared input (a wrong ``--input-shape``, a rank it does not accept)
    would otherwise crash in every trial of the search; a runtime error here is the user's input, said
    once, before any trial."""
    from dataclasses import replace

    from ..live.profiler import profile
    from ..locking import exclusive_lock

    batch = getattr(task.sources.get(label), "fixed_batch", None) or 1  # an ONNX file may fix its batch size
    on_line(f"pre-flight: running {label} once at batch {batch}")
    one = replace(request, config={**request.config, "batch_size": batch}, latency_cap_ms=None, early_stop_factor=0.0,
                  warmup_min_iters=1, warmup_max_iters=1, min_iters=1, max_iters=1, max_retries=0,
                  memory_limit_mb=None)
    with exclusive_lock(task.spec.lock):
        data = profile(one).to_dict()
    error = data.get("error") or {}
    if data.get("status") == "crashed" and error.get("kind") in ("runtime", "unsupported"):
        first = _first_line(error.get("message") or "no reason given")
        shape = task.spec.input_shape
        declared = "; ".join(s.describe() for s in task.sources[label].input_specs)
        hint = (f"; --input-shape {shape} is the shape of one sample, without the batch dimension: is it the "
                "shape the model takes?") if shape else (
            f"; the inputs given were {declared} (one sample each, batch excluded; several inputs, integer "
            "inputs and dynamic axes: --input NAME:SHAPE[:DTYPE[:LOW..HIGH]], repeated)")
        raise TuneInputError(f"cannot run {label} on its input: {first[:300]}{hint}")


def _replayed_best(search_dir: Path, before: int, task: TuneTask) -> float | None:
    """The best feasible objective among the first ``before`` trials a resumed search replayed."""
    from ..outcome import counts_as_found
    from ..results import ResultsFormatError, read_case_file
    from ..scoring.reading import iter_case_paths

    best = None
    for path in iter_case_paths(search_dir) if search_dir.exists() else ():
        try:
            trials = read_case_file(path).trials
        except (OSError, ResultsFormatError):
            continue
        for t in trials[:before]:
            o = t["outcome"]
            if counts_as_found(o) and o.get("objective") is not None and (
                    best is None or task.objective.better(o["objective"], best)):
                best = o["objective"]
    return best


def _progress(task: TuneTask, budget: int, on_line: Callable[[str], None],
              search_dir: Path | None = None) -> Callable[[Any, dict], None]:
    from ..reporting import format_value, short_config

    state: dict[str, Any] = {"best": None, "started": False}
    metric = task.objective.metric
    sign = task.objective.sign

    def on_trial(case: Any, record: dict) -> None:
        if not state["started"]:  # a resumed search: the best of the replayed trials is the best so far
            state["started"] = True
            if record["trial"] > 0 and search_dir is not None:
                state["best"] = _replayed_best(search_dir, record["trial"], task)
        o = record["outcome"]
        m = o.get("metrics") or {}
        if o.get("status") == "ok" and o.get("objective") is not None:
            if state["best"] is None or sign * o["objective"] > sign * state["best"]:
                state["best"] = o["objective"]
        status = "early stop" if o.get("early_stopped") else o["status"]
        if o.get("error"):
            status += f" ({o['error'].get('kind')})"
        shown = [f"{short}={format_value(m[k])}{unit}" for k, short, unit in
                 (("latency_p95_ms", "p95", "ms"), ("memory_peak_mb", "mem", "MB"), ("throughput_sps", "tput", "/s"))
                 if m.get(k) is not None]
        best = "none yet" if state["best"] is None else format_value(state["best"])
        redo = f", redone x{int(m['measurement_attempts']) - 1}" if m.get("measurement_attempts") else ""
        on_line(" ".join(part for part in (f"[{record['trial'] + 1:>3}/{budget}]", short_config(task.grid.expand(record["config"])), "->",
                                           status, *shown, f"({float(o.get('cost_s') or 0):.1f} s{redo})",
                                           f"| best {metric}: {best}") if part))

    return on_trial


def _read_repeats(path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line from an interrupted run
            out.setdefault(rec["key"], []).append(rec)
    return out


def _remeasure(task: TuneTask, candidates: list[dict], rule: RecommendationRule, path: Path,
               on_line: Callable[[str], None]) -> list[CandidateVerdict]:
    done = _read_repeats(path)
    verdicts = []
    with open(path, "a", encoding="utf-8") as fh:
        for i, cand in enumerate(candidates, 1):
            key = task.space.key(cand["config"])
            records = done.get(key, [])
            attempts = len(records)

            def clean() -> int:
                return sum(1 for r in records if not (r["outcome"].get("metrics") or {}).get("contaminated"))

            while clean() < rule.repeats and attempts < 2 * rule.repeats:
                attempts += 1
                measurement = task.measure(task.request_for(cand["config"], EvalContext()))
                outcome = task.outcome_from(measurement, cand["config"]).to_dict()
                data = measurement.to_dict() if hasattr(measurement, "to_dict") else dict(measurement)
                rec = {"key": key, "config": cand["config"], "repeat": len(records), "outcome": outcome,
                       "measurement": data}
                fh.write(json.dumps(rec, allow_nan=False, default=str) + "\n")
                fh.flush()
                records.append(rec)
                m = outcome.get("metrics") or {}
                p95 = m.get("latency_p95_ms")
                on_line(f"candidate {i}/{len(candidates)} repeat {clean()}/{rule.repeats}: "
                        f"{'early stop' if outcome.get('early_stopped') else outcome['status']}"
                        + (f" p95={p95:.2f} ms" if p95 is not None else "")
                        + (" (contaminated: redone)" if m.get("contaminated") else ""))
            verdicts.append(judge_candidate(key, task.grid.expand(cand["config"]), cand["outcome"],
                                            [r["outcome"] for r in records], rule))
    return verdicts


def _no_feasible_message(task: TuneTask, trials: list[dict]) -> str:
    if not trials:
        return "no trial ran"
    kinds = [((t["outcome"].get("error") or {}).get("kind")) for t in trials]
    memory = task.device_profile.memory_mb
    if memory and all(k == "oom" for k in kinds):
        return (f"every configuration ran out of the device memory ({memory:g} MB): the model is too large for "
                f"{task.device_profile.name}; try a larger --device-memory-mb or a smaller model")
    measured = [t for t in trials if t["outcome"].get("violation")]
    if not measured:
        return _nothing_measured_message(task, trials)
    closest = min(measured, key=lambda t: sum(t["outcome"]["violation"].values()))
    from ..reporting import binding_constraint, short_config

    binding = binding_constraint(closest["outcome"], [c.to_json() for c in task.constraints])
    if binding.startswith("accuracy_unknown"):
        return (f"no configuration met the caps in {len(trials)} trials: the closest, "
                f"{short_config(task.grid.expand(closest['config']))}, met the latency and memory caps but its accuracy is documented "
                "nowhere (ONNX Runtime int8 and PyTorch dynamic int8 have no published figure), and the objective is "
                "accuracy. Use --objective throughput, measure accuracy with --data, or leave those precisions out "
                "(--precisions fp32,fp16); every trial is kept (resume with --resume)")
    return (f"no configuration met the caps in {len(trials)} trials; the closest was {short_config(task.grid.expand(closest['config']))} "
            f"({binding}). Loosen a cap, widen the space (--batch-sizes, --precisions) or raise --budget; "
            "every trial is kept (resume with a larger budget)")


def _nothing_measured_message(task: TuneTask, trials: list[dict]) -> str:
    """Why no trial has a measured violation: every trial crashed (the errors, by kind, with the first
    message) and/or was stopped early (the fastest estimate against the latency cap)."""
    from ..reporting import format_value

    failed = [t for t in trials if t["outcome"].get("status") in ("crashed", "timeout")]
    stopped = [t for t in trials if t["outcome"].get("early_stopped")]
    parts = []
    if failed:
        kinds: dict[str, int] = {}
        for t in failed:
            kind = (t["outcome"].get("error") or {}).get("kind") or t["outcome"]["status"]
            kinds[kind] = kinds.get(kind, 0) + 1
        distinct: list[str] = []
        for t in failed:  # the first distinct error messages, each once
            first = _first_line((t["outcome"].get("error") or {}).get("message"))
            if first and first[:200] not in distinct:
                distinct.append(first[:200])
        shown = "; ".join(f'"{m}"' for m in distinct[:3]) + (f" and {len(distinct) - 3} more" if len(distinct) > 3 else "")
        parts.append(f"{len(failed)} crashed or timed out ({', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))})"
                     + (f"; {'the error' if len(distinct) == 1 else 'the errors'}: {shown}" if distinct else ""))
    if stopped:
        estimates = [(t["outcome"].get("metrics") or {}).get("early_stop_estimate_ms") for t in stopped]
        estimates = [e for e in estimates if isinstance(e, (int, float))]
        cap = task.spec.latency_cap
        text = f"{len(stopped)} stopped early, clearly over the latency cap"
        if estimates and cap:
            text += f" (the fastest ran at about {format_value(min(estimates))} ms against {cap[0]} <= {format_value(cap[1])})"
        parts.append(text)
    if not parts:
        return f"no configuration met the caps in {len(trials)} trials"
    advice = "a looser latency cap needs a new run (another --out, or --overwrite)" if stopped and not failed else \
        "every error message is in report.json"
    return f"no configuration ran to completion in {len(trials)} trials: " + "; ".join(parts) + f". {advice}"


def _unmeasured_accuracy_warning(verdict: CandidateVerdict) -> str | None:
    """A warning when the recommendation changes the model's numerics (int8, fp16) and no accuracy was
    measured for it: its speed is measured, what it costs in accuracy is not."""
    precision = str(verdict.config.get("precision", ""))
    if precision == "fp32":
        return None
    metrics = [r.get("metrics") or {} for r in verdict.repeats] or [{}]
    if any(m.get("accuracy") is not None and not m.get("accuracy_unknown") for m in metrics):
        return None
    how = ("quantised with calibration on generated inputs" if precision == "int8_static"
           else "quantised" if precision.startswith("int8") else "converted to half precision")
    return (f"warning: the recommended {precision} deployment is {how}, and its accuracy was not measured "
            "(no documented figure for this model and precision, no --data): check it on your own data before "
            "deploying, or pass --precisions fp32 to keep the model's numerics")


def artefact_companions(path: str) -> list[str]:
    """The files an artefact needs beside it: ``model.bin`` of OpenVINO's ``model.xml``, the external
    data ``model.onnx.data`` of a large ONNX file."""
    folder, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    return sorted(os.path.join(folder, f) for f in os.listdir(folder or ".")
                  if f != name and (f.startswith(name + ".") or (name.endswith(".xml") and f == stem + ".bin")))


def _copy_deployment(task: TuneTask, verdict: CandidateVerdict, out: Path) -> dict | None:
    from ..live.profiler import artefact_slot

    slot = artefact_slot(task.request_for(verdict.config))
    try:
        with open(os.path.join(slot or "", "artefact.json"), encoding="utf-8") as fh:
            art = (json.load(fh).get("artefact") or {})
    except (OSError, ValueError):
        return None
    src = art.get("path")
    if not src or not os.path.exists(src):
        return None
    dest_dir = out / "deployment"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / os.path.basename(src)
    shutil.copyfile(src, dest)
    for companion in artefact_companions(src):  # OpenVINO's weights, an ONNX file's external data
        shutil.copyfile(companion, dest_dir / os.path.basename(companion))
    return {"path": str(dest), "format": art.get("format"), "quant_engine": art.get("quant_engine"),
            "input_shape": art.get("input_shape"), "inputs": art.get("inputs"), "artefact_mb": art.get("artefact_mb")}


def tune(model: TuneSpec | str | Any | Sequence[Any], out_dir: str | os.PathLike[str] = "tune-results", *,
         resume: bool = False, overwrite: bool = False, on_line: Callable[[str], None] = print,
         profile_fn: Callable[[Any], Any] | None = None, prepare_fn: Callable[[Any], dict] | None = None,
         plugin_args: tuple[str, ...] = (), **options: Any) -> TuneResult:
    """Tune the deployment of a model under caps; everything lands in ``out_dir``.

    ``model`` is a :class:`TuneSpec`, or the model(s) with keyword options named as the command line's
    flags (``--p95-ms`` is ``p95_ms``, ``--input`` is ``input``, a list for several, ``--data`` is
    ``data``; the spec's field names work too). A model is a text as on the command line, a factory
    function (by its import path) or a ``torch.nn.Module`` object (saved whole under ``out_dir``; its
    class must be importable, not defined in ``__main__``)::

        result = deploybench.tune("resnet18", p95_ms=20, memory_mb=512, device_profile="cpu", budget=25)
        result.recommended.config, result.recommended.medians

    Raises :class:`TuneInputError` on bad input (before measuring; what was measured is kept);
    ``profile_fn``/``prepare_fn`` replace the live profiler (tests)."""
    from ..plugins import create_plugin_manager
    from ..errors import UsageError
    from ..runner import Case, RunOptions, run_case
    from ..results import read_case_file

    if isinstance(model, TuneSpec):
        if options:
            raise TypeError("give either a TuneSpec or keyword options, not both")
        spec = model
    else:
        from dataclasses import fields

        from ..errors import did_you_mean

        known = [f.name for f in fields(TuneSpec) if f.name != "models"]
        options = {_KEYWORD_ALIASES.get(k, k): v for k, v in options.items()}  # the flags' own names
        if isinstance(options.get("inputs"), str):
            options["inputs"] = (options["inputs"],)
        for name in options:
            if name not in known:
                raise TuneInputError(f"unknown tune option {name!r}; options: {', '.join(known)}"
                                     + did_you_mean(name, known))
        models = [model] if isinstance(model, str) or not isinstance(model, (list, tuple)) else list(model)
        spec = TuneSpec(models=tuple(_model_text(m, Path(out_dir)) for m in models), **options)
    spec.validate()
    sources = _sources(spec)
    out = Path(out_dir).resolve()  # workers run in their own folders: every path they get is absolute
    spec_path = out / "spec.json"
    if out.exists() and spec_path.exists() and not (resume or overwrite):
        raise TuneInputError(f"{out} already holds a tune run; use --resume to continue it or --overwrite to replace it")
    if overwrite and not resume and out.exists():
        for name in ("search", "repeats.jsonl", "report.json", "report.md", "deployment"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if resume and spec_path.exists():
        _check_resumable(spec, spec_path)
    out.mkdir(parents=True, exist_ok=True)
    pm = create_plugin_manager(list(plugin_args))
    try:
        pm.get_optimizer_class(spec.optimizer)
    except UsageError as exc:
        raise TuneInputError(str(exc)) from None
    task = TuneTask(spec, sources, artefact_dir=str(out / "artefacts"), profile_fn=profile_fn)
    live = prepare_fn is None and profile_fn is None
    if live:
        from ..live.profiler import prepare as prepare_fn
    described = _preflight(task, prepare_fn, on_line, smoke=live) if prepare_fn is not None else {}
    exclusions = _exclusions(task, described, probe=live, on_line=on_line)
    if exclusions:
        task = TuneTask(spec, sources, artefact_dir=str(out / "artefacts"), profile_fn=profile_fn,
                        exclusions=exclusions)
    from ..live.user_data import is_user_data

    if is_user_data(spec.data_dir):
        task.data_path = _sample_of_your_data(task, out, on_line)
        task.with_reference(_fp32_reference(task, out, on_line))
    for note in task.notes:
        on_line(f"note: {note}")
    on_line(f"tune: {task.metadata.description}")
    on_line(f"optimizer {spec.optimizer}, budget {spec.budget} trials"
            + (f" or {spec.budget_seconds:g} s" if spec.budget_seconds else "") + f", space of {task.grid.size()} configurations")
    spec_path.write_text(json.dumps({"spec": spec.to_json(), "sources": [s.to_json() for s in sources],
                                     "exclusions": [e.to_json() for e in exclusions],
                                     "runtimes": task.grid.runtimes() if exclusions else None}, indent=2))
    case = Case(task="tune", target=task.device_profile.name, task_label="tune", optimizer=spec.optimizer,
                seed=spec.seed, budget=spec.budget, budget_seconds=spec.budget_seconds, kind="live")
    options = RunOptions(out_dir=str(out / "search"), resume=resume, overwrite=overwrite and not resume, extend=True)
    result = run_case(case, options, pm, on_trial=_progress(task, spec.budget, on_line, out / "search"), task=task)
    if result.replayed:
        on_line(f"resumed: {result.replayed} recorded trials replayed, not measured again")
    trials = read_case_file(result.path).trials
    rule = RecommendationRule(spec.candidates, spec.repeats, spec.confidence, spec.min_feasible_rate)
    outcome = TuneResult(status="no_feasible", out_dir=str(out), message="", objective=task.objective.__dict__.copy(),
                         trials=trials, notes=list(task.notes), search_error=result.error)
    picked = select_candidates(trials, task.objective.direction, rule.candidates, key_fn=task.space.key)
    if not picked:
        outcome.message = _no_feasible_message(task, trials)
    else:
        on_line(f"re-measuring the top {len(picked)} candidates {rule.repeats}x each in fresh processes")
        outcome.candidates = _remeasure(task, picked, rule, out / "repeats.jsonl", on_line)
        chosen, alternatives = recommend(outcome.candidates, task.objective.direction, spec.latency_cap)
        outcome.recommended, outcome.alternatives = chosen, alternatives
        if chosen is None and all(v.n == 0 for v in outcome.candidates):
            outcome.status = "no_robust"
            outcome.message = ("every re-measurement of the candidates was disturbed by other work on this machine "
                               "(the contention guard redid each one and discarded them all): nothing is recommended "
                               "from disturbed figures; rerun with --resume on a quiet machine (the search is kept)")
        elif chosen is None:
            outcome.status = "no_robust"
            short = [v for v in outcome.candidates if v.n < rule.repeats]
            outcome.message = ("no candidate held its feasibility over its repeats (" +
                               "; ".join(f"{v.feasible}/{v.n} feasible" if v.n else "every repeat disturbed"
                                         for v in outcome.candidates) + "): " +
                               (f"{len(short)} candidate(s) got fewer than {rule.repeats} clean repeats in "
                                f"{2 * rule.repeats} attempts (other work on the machine disturbed the rest): "
                                "resume on a quieter machine, or " if short else
                                "the caps sit inside the measurement noise of every candidate: ") +
                               "loosen a cap or raise --budget (more candidates) and resume")
        else:
            outcome.status = "recommended"
            outcome.deployment = _copy_deployment(task, chosen, out)
            outcome.message = f"recommended after {chosen.feasible}/{chosen.n} feasible repeats"
            warning = _unmeasured_accuracy_warning(chosen)
            if warning:
                outcome.notes.append(warning)
    outcome.redone = task.redone
    from .report import write_report

    outcome.report_paths = write_report(outcome, task, rule)
    return outcome
