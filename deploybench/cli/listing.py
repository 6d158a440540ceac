"""``deploybench list``: the tasks (with targets), optimizers and executors that are registered.

It reads names and descriptions from the registrations only, so it imports no optimizer library."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("list", help="list tasks, targets, optimizers and executors")
    p.add_argument("what", nargs="?", choices=("tasks", "optimizers", "targets", "executors", "all"), default="all")
    p.set_defaults(handler=run)


def run(args: Any, pm: Any) -> int:
    specs = pm.task_specs()
    if args.what in ("tasks", "targets", "all"):
        rows = [[s.name, s.kind, ", ".join(s.targets) + (" (or a table path)" if s.accepts_paths else ""),
                 s.default_target, s.description] for s in specs.values()]
        print(tabulate(rows, headers=["task", "kind", "targets", "default", "description"]))
        print()
    if args.what in ("optimizers", "all"):
        # from the registered specs: listing imports no optimizer library
        rows = [[name, spec.import_path.partition(":")[0], spec.description]
                for name, spec in sorted(pm.optimizer_specs().items())]
        print(tabulate(rows, headers=["optimizer", "module", "description"]))
        print()
    if args.what in ("executors", "all"):
        print(tabulate([[name, type(ex).__module__] for name, ex in pm.executors().items()],
                       headers=["executor", "module"]))
    if pm.broken:  # what they would have registered is missing from the lists above
        names = ", ".join(f"{b.name} ({b.source})" for b in pm.broken)
        print(f"\nnote: {len(pm.broken)} plugin(s) failed to load and are missing above: {names}; "
              "`deploybench plugins` shows why")
    return 0
