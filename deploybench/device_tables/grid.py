"""The deployment grid, defined once: models, backends, precisions, batch sizes, threads and runtime knobs.

The live task, the recorder and recorded tables all build their search space here, so a table recorded
on one grid and the scenarios that replay it can never disagree about a parameter's domain.

Precisions mean what executed, not what was asked for (the profiler checks the executed dtype and
reports ``unsupported`` otherwise):

- ``fp32``, ``fp16``: weights and arithmetic in that float type;
- ``int8_static``: weights and activations int8 with calibrated scales (PyTorch: torchvision's
  quantizable architectures, fused and converted with the x86/fbgemm or QNNPACK engine; ONNX Runtime:
  QDQ static quantisation, which its CPU provider fuses into integer kernels);
- ``int8_dynamic``: int8 weights, activations quantised at run time. ONNX Runtime quantises
  convolutions and matrix products this way; PyTorch's dynamic mode quantises only ``nn.Linear``
  layers, so for a CNN it would run almost entirely in fp32 and is reported ``unsupported`` unless
  most of the model's FLOPs are in Linear layers (vision transformers).

Runtime knobs a deployment engineer turns: ``threads`` (CPU thread pool of eager PyTorch and ONNX
Runtime), ``memory_format`` (eager PyTorch: NCHW ``contiguous`` or NHWC ``channels_last``) and
``graph_optimization`` (ONNX Runtime's graph optimisation level, ``basic`` or ``all``; ``all`` adds
the layout and QDQ fusions). ``openvino`` (Intel's OpenVINO runtime on the CPU, from the ONNX export;
int8 through NNCF post-training quantisation) has its own thread count and ``performance_hint``
(``latency``: one stream, every thread on one request; ``throughput``: the runtime splits the threads
into streams; the measurement stays one synchronous request, so this is what the hint costs a single
caller). OpenVINO is not in the recorded tables' default grid (:data:`BACKENDS`); ``tune`` searches it
where it is installed, and ``deploybench record --backends ...,openvino`` records it. ``torch.compile`` has no knob here: its thread pool is the process
default and each of its configurations costs a compilation, the most expensive measurement of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from ..space import Categorical, Condition, Integer, Ordinal, SearchSpace

__all__ = ["SMALL_GRID", "MODELS", "BACKENDS", "KNOWN_BACKENDS", "PRECISIONS", "PERFORMANCE_HINTS",
           "PERFORMANCE_HINT_BACKENDS", "BATCH_SIZES", "THREADS", "MEMORY_FORMATS", "GRAPH_OPTIMIZATIONS",
           "THREADED_BACKENDS", "MEMORY_FORMAT_BACKENDS", "GRAPH_OPTIMIZATION_BACKENDS", "GRID_PARAMS",
           "DeploymentGrid", "canonical_order", "artefact_key", "expand_config"]

#: ten architectures that run on a 2-core CPU, six of them with torchvision quantizable definitions
MODELS: tuple[str, ...] = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                           "shufflenet_v2_x1_0", "googlenet", "efficientnet_b0", "regnet_y_400mf", "vit_b_16")
BACKENDS: tuple[str, ...] = ("pytorch_eager", "torch_compile", "onnxruntime")
#: every backend the live profiler can measure (the recorded grids use :data:`BACKENDS`)
KNOWN_BACKENDS: tuple[str, ...] = BACKENDS + ("openvino",)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8_dynamic", "int8_static")
#: single requests, a small batch and a server batch. Three values, not six: each batch size multiplies
#: the grid (and its recording time on a 2-core machine) by one; 1, 4, 16 keep the latency-throughput
#: trade-off (batch 16 is past the p99 cap for most models) at half the cost
BATCH_SIZES: tuple[int, ...] = (1, 4, 16)
THREADS: tuple[int, ...] = (1, 2)
MEMORY_FORMATS: tuple[str, ...] = ("contiguous", "channels_last")
GRAPH_OPTIMIZATIONS: tuple[str, ...] = ("basic", "all")
PERFORMANCE_HINTS: tuple[str, ...] = ("latency", "throughput")
#: backends whose CPU thread pool size is a knob (torch_compile inherits the process default)
THREADED_BACKENDS: tuple[str, ...] = ("pytorch_eager", "onnxruntime", "openvino")
MEMORY_FORMAT_BACKENDS: tuple[str, ...] = ("pytorch_eager",)
GRAPH_OPTIMIZATION_BACKENDS: tuple[str, ...] = ("onnxruntime",)
PERFORMANCE_HINT_BACKENDS: tuple[str, ...] = ("openvino",)
GRID_PARAMS: tuple[str, ...] = ("model", "backend", "precision", "batch_size", "threads", "memory_format",
                                "graph_optimization", "performance_hint")

_KNOWN_ORDER: dict[str, Sequence[Any]] = {"model": MODELS, "backend": KNOWN_BACKENDS, "precision": PRECISIONS,
                                          "memory_format": MEMORY_FORMATS, "graph_optimization": GRAPH_OPTIMIZATIONS,
                                          "performance_hint": PERFORMANCE_HINTS}
#: the runtime knobs: (parameter, the grid's field holding its domain, the backends it applies to)
_KNOBS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("memory_format", "memory_formats", MEMORY_FORMAT_BACKENDS),
    ("graph_optimization", "graph_optimizations", GRAPH_OPTIMIZATION_BACKENDS),
    ("performance_hint", "performance_hints", PERFORMANCE_HINT_BACKENDS),
)


def canonical_order(name: str, values: Iterable[Any]) -> list:
    """``values`` of parameter ``name`` in the grid's canonical order (unknown values last, sorted)."""
    values = set(values)
    known = _KNOWN_ORDER.get(name)
    if known is None:
        return sorted(values)
    return [v for v in known if v in values] + sorted(v for v in values if v not in known)


def expand_config(config: Mapping[str, Any], runtimes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A configuration of a joint ``runtime`` space (:meth:`DeploymentGrid.runtimes`) in the grid's own
    terms: ``backend`` and ``precision`` in its place, plus the knobs its exclusions fix, in the order of
    :data:`GRID_PARAMS`."""
    if "runtime" not in config:
        return dict(config)
    runtime = str(config["runtime"])
    backend, precision = runtime.split("/", 1)
    merged = {**{k: v for k, v in config.items() if k != "runtime"}, "backend": backend, "precision": precision,
              **dict(runtimes.get(runtime) or {})}
    return {k: merged[k] for k in (*GRID_PARAMS, *sorted(set(merged) - set(GRID_PARAMS))) if k in merged}


def artefact_key(config: Mapping[str, Any]) -> tuple[str, str, str]:
    """What a deployment artefact depends on: the model, the artefact family (a saved PyTorch module
    serves eager and compiled runs; an ONNX file serves ONNX Runtime) and the precision. Batch size,
    threads and knobs are chosen when the artefact is loaded."""
    family = {"onnxruntime": "onnx", "openvino": "openvino"}.get(str(config["backend"]), "torch")
    return str(config["model"]), family, str(config["precision"])


@dataclass(frozen=True)
class DeploymentGrid:
    """A deployment grid: the domain of every parameter. ``space()`` is the search space optimizers see.

    Parameters whose domain is empty for the chosen backends (``threads`` without a threaded backend,
    knobs without their backend) are left out of the space. A grid recorded before a knob existed
    simply has no such parameter.
    """

    models: tuple[str, ...] = MODELS
    backends: tuple[str, ...] = BACKENDS
    precisions: tuple[str, ...] = PRECISIONS
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    threads: tuple[int, ...] = THREADS
    memory_formats: tuple[str, ...] = MEMORY_FORMATS
    graph_optimizations: tuple[str, ...] = GRAPH_OPTIMIZATIONS
    performance_hints: tuple[str, ...] = PERFORMANCE_HINTS
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: partial configurations known not to run (``{"backend": "onnxruntime", "precision": "fp16"}``): with
    #: any, :meth:`space` joins backend and precision into one ``runtime`` parameter that lists only the
    #: pairs that run, so no optimizer can propose an excluded one (see :meth:`expand`)
    excluded: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for name in ("models", "backends", "precisions", "memory_formats", "graph_optimizations", "performance_hints"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        object.__setattr__(self, "batch_sizes", tuple(sorted(int(b) for b in self.batch_sizes)))
        object.__setattr__(self, "threads", tuple(sorted({int(t) for t in self.threads})))
        for name in ("models", "backends", "precisions", "batch_sizes"):
            if not getattr(self, name):
                raise ValueError(f"a deployment grid needs at least one value of {name}")

    def narrowed(self, **keep: Sequence[Any] | None) -> "DeploymentGrid":
        """The grid restricted to the given values (``None`` keeps a domain as it is)."""
        changes = {name: tuple(v for v in getattr(self, name) if v in set(values))
                   for name, values in keep.items() if values is not None}
        return replace(self, **changes)

    def runtimes(self) -> dict[str, dict[str, Any]]:
        """With exclusions: each ``backend/precision`` value of the ``runtime`` parameter that can run,
        and the knobs an exclusion fixes for it (``onnxruntime/int8_static`` runs at graph optimisation
        ``all`` only). Pairs left with no knob value are dropped."""
        out: dict[str, dict[str, Any]] = {}
        knobs = {name: getattr(self, domain) for name, domain, _ in _KNOBS}
        for b in self.backends:
            for p in self.precisions:
                base = {"backend": b, "precision": p}
                if any(set(e) == {"backend", "precision"} and all(base[k] == v for k, v in e.items())
                       for e in self.excluded):
                    continue
                fixed: dict[str, Any] = {}
                dropped = False
                for knob, domain in knobs.items():
                    rules = [e for e in self.excluded if set(e) == {"backend", "precision", knob}
                             and e["backend"] == b and e["precision"] == p]
                    if not rules:
                        continue
                    left = [v for v in domain if not any(e[knob] == v for e in rules)]
                    if not left:
                        dropped = True
                    elif len(left) == 1:
                        fixed[knob] = left[0]
                    elif len(left) < len(domain):
                        raise ValueError(f"an exclusion leaves {knob} {left} for {b}/{p}: only a single remaining "
                                         "value can be expressed in the space")
                if not dropped:
                    out[f"{b}/{p}"] = fixed
        if not out:
            raise ValueError("the exclusions leave no backend and precision that can run")
        return out

    def expand(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with ``backend`` and ``precision`` (and knobs an exclusion fixes) in place of a
        ``runtime`` value; a configuration without one is returned as it is."""
        return expand_config(config, self.runtimes() if "runtime" in config else {})

    def space(self) -> SearchSpace:
        if self.excluded:
            return self._joint_space()
        params: list = [
            Categorical("model", choices=self.models),
            Categorical("backend", choices=self.backends),
            Categorical("precision", choices=self.precisions),
            Ordinal("batch_size", values=self.batch_sizes, log=True),
        ]
        threaded = tuple(b for b in THREADED_BACKENDS if b in self.backends)
        if threaded and self.threads:
            params.append(self._threads_param(Condition("backend", threaded)))
        for name, field_name, backends in _KNOBS:
            domain = getattr(self, field_name)
            active = tuple(b for b in backends if b in self.backends)
            if active and domain:
                params.append(Categorical(name, choices=domain, condition=Condition("backend", active)))
        return SearchSpace(params)

    def _threads_param(self, condition: Condition) -> Any:
        """``threads``: an integer range when the values are consecutive, else the listed values."""
        values = self.threads
        if len(values) > 1 and values == tuple(range(values[0], values[-1] + 1)):
            return Integer("threads", low=values[0], high=values[-1], condition=condition)
        return Ordinal("threads", values=values, condition=condition)

    def _joint_space(self) -> SearchSpace:
        runtimes = self.runtimes()

        def backend_of(runtime: str) -> str:
            return runtime.split("/", 1)[0]

        params: list = [Categorical("model", choices=self.models), Categorical("runtime", choices=tuple(runtimes)),
                        Ordinal("batch_size", values=self.batch_sizes, log=True)]
        threaded = tuple(r for r in runtimes if backend_of(r) in THREADED_BACKENDS)
        if threaded and self.threads:
            params.append(self._threads_param(Condition("runtime", threaded)))
        for name, field_name, backends in _KNOBS:
            domain = getattr(self, field_name)
            active = tuple(r for r, fixed in runtimes.items() if backend_of(r) in backends and name not in fixed)
            if active and domain:
                params.append(Categorical(name, choices=domain, condition=Condition("runtime", active)))
        return SearchSpace(params)

    @classmethod
    def from_space(cls, space: SearchSpace) -> "DeploymentGrid":
        """The grid a (recorded) space describes; parameters it lacks get an empty domain."""
        def domain(name: str) -> tuple:
            if name not in space.names:
                return ()
            p = space[name]
            if hasattr(p, "choices"):
                return tuple(p.choices)
            if hasattr(p, "values"):
                return tuple(p.values)
            return tuple(range(int(p.low), int(p.high) + 1))

        backends = domain("backend")
        # a knob no backend of the space has (every recorded table's performance hint) keeps its default
        # domain, which has no effect: the grid reads back equal to the one that made the space
        hints = domain("performance_hint") or (PERFORMANCE_HINTS if not set(backends) & set(PERFORMANCE_HINT_BACKENDS)
                                               else ())
        return cls(models=domain("model"), backends=backends, precisions=domain("precision"),
                   batch_sizes=domain("batch_size"), threads=domain("threads"),
                   memory_formats=domain("memory_format"), graph_optimizations=domain("graph_optimization"),
                   performance_hints=hints)

    @classmethod
    def from_domains(cls, domains: Mapping[str, Sequence[Any]]) -> "DeploymentGrid":
        """A grid from per-parameter values (in any order; kept in canonical order)."""
        def get(name: str) -> tuple:
            return tuple(canonical_order(name, domains.get(name) or ()))

        return cls(models=get("model"), backends=get("backend"), precisions=get("precision"),
                   batch_sizes=get("batch_size"), threads=get("threads"), memory_formats=get("memory_format"),
                   graph_optimizations=get("graph_optimization"), performance_hints=get("performance_hint"))

    def size(self) -> int:
        return sum(1 for _ in self.space().grid())


#: the grid of the ``small`` device profile (768 MB including the runtime, 2 threads, 60 s per trial),
#: chosen so that out-of-memory depends on model x batch x backend x precision (probed live under the
#: resident accounting, total resident MB at batch 1 / 16, one thread: PyTorch fp32 resnet18 747 / 897,
#: mobilenet_v2 726 / 984; PyTorch int8_static resnet18 556 / 629; ONNX Runtime fp32 resnet18 208 / 313,
#: efficientnet_b0 131 / 482, vit_b_16 625 / 934). Batch 32 instead of 16 makes the ONNX Runtime side
#: reach the boundary too; fp16 is left out because the boards the profile stands for (Cortex-A53/A72,
#: ARMv8.0) have no fp16 arithmetic; one value of each runtime knob keeps the grid recordable on a
#: 2-core machine (288 configurations).
SMALL_GRID = DeploymentGrid(
    models=("mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0", "resnet18", "googlenet", "efficientnet_b0",
            "resnet50", "vit_b_16"),
    backends=("pytorch_eager", "onnxruntime"),
    precisions=("fp32", "int8_dynamic", "int8_static"),
    batch_sizes=(1, 8, 32),
    threads=(1, 2),
    memory_formats=("contiguous",),
    graph_optimizations=("all",),
)
