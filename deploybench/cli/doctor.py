"""``deploybench doctor``: probe every backend × precision path on this machine (a fresh worker each)
and print what works, what fails, the error kind and the reason; plus which pretrained weights are
in the local cache. Environment failures are labelled ``environment``."""

from __future__ import annotations

import json
from typing import Any

from tabulate import tabulate


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("doctor", help="pre-flight check of the live profiler's backends on this machine")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="probe this device only (default: the CPU and, when present, the GPU)")
    p.add_argument("--cached", action="store_true", help="reuse a report younger than a day if there is one")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--time-limit", type=float, default=90.0, metavar="S", help="seconds per probe (default 90)")
    p.set_defaults(handler=run)


def run(args: Any, pm: Any) -> int:
    try:
        from ..live.doctor import doctor_report, format_report, weights_report
    except ImportError as exc:
        print(f"the live profiler cannot be imported ({exc}); install the extra: pip install 'deploybench[live]'")
        return 1
    devices = None if args.device == "auto" else [args.device]
    rows = doctor_report(quick=args.cached, devices=devices, time_limit_s=args.time_limit)
    weights = weights_report()
    if args.json:
        print(json.dumps({"paths": rows, "weights": weights}, indent=1))
        return 0
    print(format_report(rows))
    print()
    print(tabulate([[w["model"], w["pretrained_weights"], w["documented_top1"]] for w in weights],
                   headers=["model", "pretrained weights", "documented top-1"]))
    from ..live.doctor import memory_limit_report

    print()
    print(memory_limit_report())
    return 0
