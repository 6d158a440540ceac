"""``deploybench run``: collect optimizer × task × seed cases and run them."""

from __future__ import annotations

import argparse
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..exit_codes import ExitCode
from ..errors import UsageError, unknown_name_message
from ..reporting import PROGRESS_LEGEND
from ..runner import RunOptions
from ..collection import collect
from ..session import Session
from .doctor import require_live_dependencies

#: without --out, each session writes a new folder under this one (as benchopt does)
DEFAULT_RESULTS_ROOT = "results"
RUN_FOLDER_PREFIX = "run-"


def _seed_list(text: str) -> list[int]:
    """``3`` or ``0,2,5`` or ``0-4``."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise argparse.ArgumentTypeError(
                        f"--seed {text}: the range {part} is empty; write LOW-HIGH with LOW <= HIGH, e.g. {hi}-{lo}")
                seeds += list(range(lo, hi + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed takes integers like 3, 0,2,5 or 0-4; got {text!r}") from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be non-negative, got {text!r}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"--seed {text}: seed {repeated[0]} is given twice")
    return seeds


def _seed_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes a number of seeds (runs seeds 0..N-1), got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--seeds must be at least 1, got {n}")
    return n


def _seconds(option: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} takes a number of seconds, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{option} must be a positive number of seconds, got {text!r}")
        return value

    return parse


def results_folder(out: str | None, resume: bool, root: str = DEFAULT_RESULTS_ROOT) -> str:
    """Where a session writes. ``--out`` as given; without it, a new ``results/run-<UTC time>``
    folder per session (so running the same command twice never mixes or replaces results), and
    with ``--resume`` the newest such folder."""
    if out is not None:
        return os.path.abspath(out)
    base = Path(root)
    if resume:
        runs = sorted(p for p in base.glob(f"{RUN_FOLDER_PREFIX}*") if p.is_dir()) if base.is_dir() else []
        if not runs:
            raise UsageError(f"--resume without --out continues the newest {root}/{RUN_FOLDER_PREFIX}* folder, and "
                             f"there is none; name the results folder to continue with --out")
        return os.path.abspath(runs[-1])
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate = base / f"{RUN_FOLDER_PREFIX}{stamp}"
    n = 2
    while candidate.exists():
        candidate = base / f"{RUN_FOLDER_PREFIX}{stamp}-{n}"
        n += 1
    return os.path.abspath(candidate)


def _dotted_assignment(flag: str, owner: str, text: str) -> tuple[str, str, str]:
    """``OWNER.PARAM=VALUE`` → (owner, param, value text); an argparse error naming ``flag`` otherwise."""
    try:
        lhs, value = text.split("=", 1)
        name, key = lhs.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes {owner}.PARAM=VALUE, got {text!r}") from None
    return name, key, value


def _opt_param(text: str) -> tuple[str, str, Any]:
    """``tba.T_init=0.5`` → ("tba", "T_init", 0.5); the value is read as JSON when it parses."""
    opt, key, value = _dotted_assignment("--opt-param", "OPTIMIZER", text)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return opt, key, parsed


def _task_param(text: str) -> tuple[str, str, str]:
    """``edge_tight.device_profile=edge`` → ("edge_tight", "device_profile", "edge"); the task reads the value."""
    return _dotted_assignment("--task-param", "TASK", text)


def _workers(text: str) -> int:
    if text == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-n takes a number of workers or 'auto', got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"-n must be at least 1, got {n}")
    return n


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser("run", help="run optimizer × task × seed cases",
                       description="Run cases and write one JSONL file per case under --out.",
                       epilog=PROGRESS_LEGEND)
    p.add_argument("-o", "--optimizer", action="append", default=[], metavar="NAME[:VALUE]",
                   help="optimizer to run (repeatable; default: all registered); NAME:VALUE sets the optimizer's "
                        "shorthand parameter, e.g. optuna:GPSampler")
    p.add_argument("-t", "--task", action="append", default=[], metavar="NAME[TARGET]",
                   help="task to run, optionally with a target in brackets (repeatable; default: all non-live tasks)")
    p.add_argument("--target", default=None,
                   help="target for every task: a device table name (cpu, h100), 'live', or a recorded table path")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_seed_count, default=None, metavar="N", help="run seeds 0..N-1 (default 1)")
    seeds.add_argument("--seed", type=_seed_list, default=None, metavar="LIST", help="explicit seeds: 3, 0,2,5 or 0-4")
    p.add_argument("--budget", type=int, default=None, help="trials per case (default: the task's budget)")
    p.add_argument("--budget-seconds", type=_seconds("--budget-seconds"), default=None,
                   help="also stop a case once its evaluations have cost this many seconds (cost_s)")
    p.add_argument("-k", dest="keyword", default="", metavar="EXPR",
                   help="only run cases whose node id matches the expression (e.g. 'branin and not random')")
    p.add_argument("--collect-only", action="store_true", help="list the cases and exit")
    p.add_argument("-x", "--exitfirst", action="store_true", help="stop after the first errored case")
    p.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more output (-v: one line per trial; -vv: every metric of each trial)")
    p.add_argument("--out", default=None,
                   help=f"results folder (default: a new ./{DEFAULT_RESULTS_ROOT}/{RUN_FOLDER_PREFIX}<UTC time> per session; "
                        "with --resume, the newest one)")
    p.add_argument("--resume", action="store_true",
                   help="skip finished cases; continue unfinished ones from their recorded trials")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the case files this run selects if --out already holds them (without it, "
                        "such a folder is refused)")
    p.add_argument("-n", "--workers", type=_workers, default=1, metavar="N",
                   help="run cases in N worker processes ('auto' = one per core)")
    p.add_argument("--executor", default=None, help="executor plugin to run cases with (serial, process, ray, ...)")
    p.add_argument("--ask-timeout", type=_seconds("--ask-timeout"), default=None, metavar="S",
                   help="end a case as an error when the optimizer's ask() takes longer than S seconds")
    p.add_argument("--eval-timeout", type=_seconds("--eval-timeout"), default=None, metavar="S",
                   help="time limit of one evaluation (default: the task's own, if it declares one); an in-process "
                        "evaluation past it is recorded as a timeout trial and ends its case as an error")
    p.add_argument("--opt-param", type=_opt_param, action="append", default=[], metavar="OPT.PARAM=VALUE",
                   help="set an optimizer parameter, e.g. tba.T_init=0.5 (repeatable)")
    p.add_argument("--task-param", type=_task_param, action="append", default=[], metavar="TASK.PARAM=VALUE",
                   help="set a task parameter, e.g. edge_tight.device_profile=edge (repeatable; `deploybench list` "
                        "shows each task's parameters); part of the case's identity and folder name")
    p.add_argument("--fsync", action="store_true", help="fsync every trial line (survives a machine crash)")
    if pm is not None:  # None for the top-level --help, which loads no plugin
        pm.hook.deploybench_addoption(parser=p, command="run")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, pm: Any) -> int:
    seeds = args.seed if args.seed is not None else list(range(args.seeds if args.seeds is not None else 1))
    if not seeds:
        raise UsageError("no seeds selected: --seed needs at least one seed")
    if args.executor is not None:
        executors = pm.executors()
        if args.executor not in executors:
            raise UsageError(unknown_name_message("executor", args.executor, executors))
    params: dict[str, dict[str, Any]] = {}
    for opt, key, value in args.opt_param:
        params.setdefault(opt, {})[key] = value
    tparams: dict[str, dict[str, Any]] = {}
    for task, key, value in args.task_param:
        tparams.setdefault(task, {})[key] = value
    cases = collect(pm, tasks=args.task, optimizers=args.optimizer, seeds=seeds, budget=args.budget,
                    budget_seconds=args.budget_seconds, target=args.target, keyword=args.keyword,
                    optimizer_params=params, task_params=tparams)
    verbosity = args.verbose - args.quiet
    if args.collect_only:
        for c in cases:
            print(c.node_id)
        print(f"\n{len(cases)} case{'s' if len(cases) != 1 else ''} collected")
        return ExitCode.OK
    if not cases:
        raise UsageError("no cases selected (check -k, --task and --optimizer)")
    if any(c.kind == "live" for c in cases):
        require_live_dependencies("--target live")
    executor = args.executor or ("process" if args.workers > 1 else "serial")
    options = RunOptions(out_dir=results_folder(args.out, args.resume), plugin_args=tuple(args.plugin),
                         resume=args.resume, ask_timeout_s=args.ask_timeout, fsync=args.fsync,
                         overwrite=args.overwrite, eval_timeout_s=args.eval_timeout)
    session = Session(pm=pm, cases=cases, options=options, executor=executor, workers=args.workers,
                      verbosity=verbosity, exitfirst=args.exitfirst, argv=args.argv, cli_options=args)
    return session.run()
