"""``deploybench doctor``: probe every backend × precision path on this machine (a fresh worker each)
and print what works, what fails, the error kind and the reason; plus which pretrained weights are
in the local cache. Environment failures are labelled ``environment``.

The live profiler needs the ``[live]`` extra (PyTorch, torchvision, ONNX Runtime, ONNX); without it
``doctor`` and ``--target live`` stop at once with the usage exit code and the install command,
instead of probing (or running) every path into the same import error.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from tabulate import tabulate

from ..errors import UsageError

__all__ = ["add_parser", "run", "missing_live_dependencies", "require_live_dependencies", "LIVE_INSTALL"]

#: module -> the distribution that provides it (the ``[live]`` extra of pyproject.toml)
LIVE_MODULES = {"torch": "torch", "torchvision": "torchvision", "onnxruntime": "onnxruntime-gpu", "onnx": "onnx",
                "onnxscript": "onnxscript"}
#: deploybench is installed from its checkout (no registry serves it), as the README says
LIVE_INSTALL = 'pip install ".[live]" (in the deploybench checkout)'


def missing_live_dependencies() -> list[str]:
    """Distributions of the ``[live]`` extra whose module cannot be found (nothing is imported)."""
    missing = []
    for module, dist in LIVE_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken parent package
            found = False
        if not found:
            missing.append(dist)
    return missing


def require_live_dependencies(what: str) -> None:
    """Raise :class:`UsageError` naming the missing packages and the install command."""
    missing = missing_live_dependencies()
    if missing:
        raise UsageError(f"{what} needs the live profiler's dependencies, which are not installed "
                         f"(missing: {', '.join(missing)}); install them with: {LIVE_INSTALL}")


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("doctor", help="pre-flight check of the live profiler's backends on this machine",
                       description=f"Probe every backend × precision path. Needs the live extra: {LIVE_INSTALL}")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="probe this device only (default: the CPU and, when present, the GPU)")
    p.add_argument("--cached", action="store_true", help="reuse a report younger than a day if there is one")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--time-limit", type=float, default=90.0, metavar="S", help="seconds per probe (default 90)")
    p.set_defaults(handler=run)


def _progress_line(row: dict[str, Any]) -> str:
    status = "works" if row["works"] else f"FAILS ({row['kind']}: {row['reason']})"
    return f"  {row['device']:<4} {row['backend']:<14} {row['precision']:<13} {status} [{row['seconds']} s]"


def run(args: Any, pm: Any) -> int:
    require_live_dependencies("deploybench doctor")
    from ..live.doctor import doctor_report, format_report, memory_limit_report, weights_report

    devices = None if args.device == "auto" else [args.device]
    on_row = None
    if not args.json:
        print("probing each backend × precision path in a fresh worker (a few seconds to a minute each):",
              flush=True)

        def on_row(row: dict[str, Any]) -> None:
            print(_progress_line(row), flush=True)

    rows = doctor_report(quick=args.cached, devices=devices, time_limit_s=args.time_limit, on_row=on_row)
    weights = weights_report()
    if args.json:
        print(json.dumps({"paths": rows, "weights": weights}, indent=1))
        return 0
    print()
    print(format_report(rows))
    print()
    print(tabulate([[w["model"], w["pretrained_weights"], w["documented_top1"]] for w in weights],
                   headers=["model", "pretrained weights", "documented top-1"]))
    print()
    print(memory_limit_report())
    return 0
