"""Combinations known not to run, left out of ``tune``'s search before it starts.

A trial of a combination that cannot run costs a preparation (an export, a quantisation) and teaches
the user nothing. Where the answer is known before the search, the combination is removed from the
space (:class:`~deploybench.device_tables.grid.DeploymentGrid` ``excluded``) and listed in the report
with its reason. Each rule says where its knowledge comes from:

- **artefact format** (true of this suite's artefacts everywhere): PyTorch int8 artefacts are
  TorchScript, which ``torch.compile`` refuses;
- **model** (from the pre-flight preparation): eager static int8 needs a torchvision quantizable
  definition; PyTorch's dynamic int8 quantises ``nn.Linear`` layers only, so it is left out when the
  pre-flight counted less than half of the model's FLOPs in them (it would be recorded ``unsupported``);
- **accuracy policy**: without ``--data`` (or ``--allow-unmeasured-accuracy``), a lower precision whose
  accuracy is documented nowhere for the model is not searched: a recommendation must not change a
  model's numerics at a cost nobody measured;
- **runtime on this device** (a one-time probe, cached for a day, :func:`deploybench.live.doctor.probe_path`):
  ONNX Runtime fp16 where the probe shows it does not execute in fp16 (its CPU provider runs fp16
  models' kernels in fp32), and QDQ static int8 at graph optimisation ``basic`` on the CPU, whose
  integer kernels come only from the fusions of ``all`` (every model of the recorded ``cpu`` and
  ``edge`` tables was ``unsupported`` there).

With several models a rule that depends on the model removes a combination only when it holds for
every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Exclusion", "known_exclusions"]


@dataclass(frozen=True)
class Exclusion:
    """A partial configuration left out of the search, why, and where that knowledge comes from."""

    match: Mapping[str, Any]
    reason: str
    evidence: str

    def describe(self) -> str:
        what = " ".join(str(v) for v in self.match.values())
        return f"{what}: {self.reason} ({self.evidence})"

    def to_json(self) -> dict:
        return {"match": dict(self.match), "reason": self.reason, "evidence": self.evidence}


def known_exclusions(sources: Sequence[Any], backends: Sequence[str], precisions: Sequence[str],
                     graph_optimizations: Sequence[str], runtime_device: str,
                     preflight: Mapping[str, Mapping[str, Any]] | None = None,
                     probe: Callable[[str, str, str], Mapping[str, Any]] | None = None,
                     unmeasured_allowed: bool = True) -> list[Exclusion]:
    """The exclusions that apply to this search.

    ``preflight`` maps a model label to its pre-flight artefact description (``linear_flop_share``);
    ``probe(device, backend, precision)`` returns a doctor row (``works``, ``kind``, ``reason``); without
    it (tests, no live runtime) the runtime rules are not applied. Without ``unmeasured_allowed`` (no
    ``--data`` and no ``--allow-unmeasured-accuracy``) a lower precision whose accuracy is documented
    nowhere for some model is left out too: it could be recommended without anyone knowing what it costs
    in accuracy."""
    from ..live.models import QUANTIZABLE, accuracy_for

    out: list[Exclusion] = []
    if "torch_compile" in backends:  # both int8 modes, whatever the model
        for p in ("int8_dynamic", "int8_static"):
            if p in precisions:
                out.append(Exclusion({"backend": "torch_compile", "precision": p},
                                     "the int8 artefact is TorchScript, and torch.compile refuses a TorchScript module",
                                     "artefact format"))
    eager = "pytorch_eager" in backends
    if eager and "int8_static" in precisions and sources and all(s.custom or s.label not in QUANTIZABLE
                                                                  for s in sources):
        out.append(Exclusion({"backend": "pytorch_eager", "precision": "int8_static"},
                             "eager static int8 needs a torchvision quantizable definition of the model "
                             "(quant stubs, fusable blocks); ONNX Runtime's int8_static quantises any model", "model"))
    shares = [(preflight or {}).get(s.label, {}).get("linear_flop_share") for s in sources]
    if eager and "int8_dynamic" in precisions and shares and all(isinstance(v, (int, float)) and v < 0.5
                                                                  for v in shares):
        top = max(float(v) for v in shares)  # type: ignore[arg-type]
        out.append(Exclusion({"backend": "pytorch_eager", "precision": "int8_dynamic"},
                             f"PyTorch's dynamic int8 quantises nn.Linear layers only, {100 * top:.1f} % of the "
                             "model's FLOPs: it would run almost entirely in fp32", "model, counted at pre-flight"))
    if "openvino" in backends and "int8_dynamic" in precisions:
        out.append(Exclusion({"backend": "openvino", "precision": "int8_dynamic"},
                             "OpenVINO quantises activations at run time only in weight-compressed language models; "
                             "its int8 for this model is int8_static (NNCF)", "artefact format"))
    for backend, name in (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO")):
        if probe is None or backend not in backends or "fp16" not in precisions:
            continue
        device = "cpu" if backend == "openvino" else runtime_device
        row = probe(device, backend, "fp16")
        if not row.get("works", True) and row.get("kind") in ("unsupported", "environment"):
            out.append(Exclusion({"backend": backend, "precision": "fp16"},
                                 f"{name} fp16 does not run in fp16 on {device} here: "
                                 f"{row.get('reason') or row.get('kind')}", "one-time probe, as deploybench doctor"))
    if (runtime_device == "cpu" and "onnxruntime" in backends and "int8_static" in precisions
            and "basic" in graph_optimizations and "all" in graph_optimizations):
        out.append(Exclusion({"backend": "onnxruntime", "precision": "int8_static", "graph_optimization": "basic"},
                             "QDQ int8 becomes integer kernels only through the fusions of graph optimisation 'all'; "
                             "at 'basic' it runs in fp32", "runtime on the CPU, every model of the recorded tables"))
    if not unmeasured_allowed:
        for b in backends:
            for p in precisions:
                if p == "fp32" or any(e.match == {"backend": b, "precision": p} for e in out):
                    continue
                unknown = [s.label for s in sources if accuracy_for(s.label, p, b)[0] is None]
                if unknown:
                    out.append(Exclusion({"backend": b, "precision": p},
                                         f"the accuracy of {', '.join(unknown)} at {p} on {b} is documented nowhere and "
                                         "not measured: give --data to measure it, or --allow-unmeasured-accuracy to "
                                         "search it anyway", "accuracy policy"))
    return out
