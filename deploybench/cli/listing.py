"""``deploybench list``: the tasks (with targets), optimizers and executors that are registered.

It reads names and descriptions from the registrations only, so it imports no optimizer library."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("list", help="list tasks, targets, optimizers and executors")
    p.add_argument("what", nargs="?", choices=("tasks", "optimizers", "targets", "executors", "all"), default="all")
    p.add_argument("--json", action="store_true",
                   help="optimizers only: name, module and description as JSON (what the leaderboard links to)")
    p.set_defaults(handler=run)


def optimizer_info(pm: Any) -> dict[str, dict[str, str]]:
    """Per registered optimizer: its module and one-line description (no optimizer module imported)."""
    return {name: {"module": spec.import_path.partition(":")[0], "description": spec.description}
            for name, spec in sorted(pm.optimizer_specs().items())}


def _print_task_params(specs: Any) -> None:
    """The tasks' parameters (``--task-param TASK.PARAM=VALUE``), tasks that declare the same ones together."""
    groups: dict[tuple, list[str]] = {}
    for spec in specs.values():
        if spec.params:
            groups.setdefault(spec.params, []).append(spec.name)
    for params, names in groups.items():
        print(f"task parameters of {', '.join(names)} (--task-param TASK.PARAM=VALUE):")
        rows = [[f"{p.name} ({'unset' if p.default is None else p.default})", ", ".join(map(str, p.choices)) if p.choices and len(p.choices) <= 6
                 else ("a comma list" if p.kind == "csv" else {str: "text", int: "an integer", float: "a number"}.get(p.kind, str(p.kind))), p.help]
                for p in params]
        print(tabulate(rows, headers=["parameter (default)", "values", "what it sets"], maxcolwidths=[None, 30, 60]))
        print()


def run(args: Any, pm: Any) -> int:
    if args.json:
        import json

        if args.what not in ("optimizers", "all"):
            from ..errors import UsageError

            raise UsageError(f"list --json lists optimizers; got {args.what!r} (use: deploybench list optimizers --json)")
        print(json.dumps(optimizer_info(pm), indent=1, sort_keys=True))
        return 0
    specs = pm.task_specs()
    if args.what in ("tasks", "targets", "all"):
        rows = [[s.name, s.kind, ", ".join(s.targets) + (" (or a table path)" if s.accepts_paths else ""),
                 s.default_target, s.description] for s in specs.values()]
        print(tabulate(rows, headers=["task", "kind", "targets", "default", "description"]))
        print()
        _print_task_params(specs)
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
