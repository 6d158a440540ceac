"""``deploybench plugins``: which plugins loaded, which are blocked, which broke and why."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("plugins", help="list loaded, blocked and broken plugins")
    p.add_argument("--traceback", action="store_true", help="show the full traceback of broken plugins")
    p.set_defaults(handler=run)


def run(args: Any, pm: Any) -> int:
    # building the registries calls every registration hook and imports every optimizer, so a hook
    # that raises and an optimizer module that cannot be imported show up too
    pm.task_specs(), pm.optimizer_classes(), pm.executors()
    rows = [[p.name, "loaded", p.source, p.module] for p in pm.loaded]
    rows += [[name, "blocked", "-p no:" + name, ""] for name in pm.blocked]
    rows += [[b.name, "BROKEN", b.source, b.error] for b in pm.broken]
    print(tabulate(rows, headers=["plugin", "state", "source", "module / reason"]))
    if args.traceback:
        for b in pm.broken:
            print(f"\n--- {b.name} ---\n{b.traceback}")
    return 0
