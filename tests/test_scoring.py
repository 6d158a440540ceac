"""Scoring internals on hand-made case files: reading, metrics, statistics, rendering, plots."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from deploybench.results import CaseWriter, case_path
from deploybench.scoring import build_leaderboard, render, summarize_case_file
from deploybench.scoring.metrics import row_label
from deploybench.scoring.reading import GroupKey, group_summaries, iter_summaries
from deploybench.scoring.references import load_references
from deploybench.scoring.render import fmt_num
from deploybench.scoring.statistics import (
    average_ranks,
    bootstrap_mean_ci,
    friedman,
    holm,
    pairwise_wilcoxon_holm,
    significance_floor,
    smallest_holm_p,
)

OPTIMUM = 10.0


def outcome(status: str, objective: float | None = None, cost: float = 1.0, kind: str | None = None,
            early: bool = False) -> dict:
    error = {"kind": kind, "message": "boom"} if kind else None
    return {"status": status, "objective": objective, "metrics": {}, "violation": {}, "cost_s": cost,
            "error": error, "early_stopped": early}


def write_case(root: Path, optimizer: str, seed: int, outcomes: list[dict], *, task: str = "toy", budget: int | None = None,
               signature: str = "sig1", direction: str = "maximize", best_family=None, configs=None,
               params: dict | None = None, end: bool = True, torn: bool = False, known_optimum=OPTIMUM,
               penalty: float | None = None, old_header: bool = False) -> Path:
    budget = budget if budget is not None else len(outcomes)
    path = case_path(root, task, optimizer, seed)
    header = {"node_id": f"{task}[x]::{optimizer}[seed={seed}]", "task": task, "target": "x", "task_label": task,
              "task_version": "1", "task_signature": signature, "task_kind": "analytic",
              "objective": {"metric": "f", "direction": direction}, "constraints": [], "known_optimum": known_optimum,
              "penalty": penalty,
              "family_param": "fam", "best_family": best_family, "optimizer": optimizer,
              "optimizer_params": params or {}, "seed": seed, "budget": budget, "budget_seconds": None}
    if old_header:  # written before the harness recorded the task's penalty
        del header["penalty"]
    cum = 0.0
    seen: set = set()
    with CaseWriter(path) as w:
        w.start(header)
        for i, o in enumerate(outcomes):
            cum += o["cost_s"]
            config = (configs[i] if configs else {"fam": "a", "x": float(i)})
            key = json.dumps(config, sort_keys=True)
            w.write({"type": "trial", "trial": i, "config": config, "outcome": o, "duplicate": key in seen,
                     "best": None, "cum_cost_s": cum})
            seen.add(key)
        if end:
            w.write({"type": "end", "status": "completed", "error": None, "n_trials": len(outcomes)})
    if torn:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write('{"type":"trial","trial":')
    return path


# -- reading ----------------------------------------------------------------------------------------
def test_summary_counts_curves_and_first_feasible(tmp_path):
    outs = [outcome("crashed", cost=0.5, kind="oom"), outcome("infeasible", 20.0, early=True),
            outcome("ok", 3.0, cost=2.0), outcome("timeout", kind="timeout"), outcome("ok", 7.0), outcome("ok", 5.0)]
    configs = [{"fam": "a", "x": 0.0}, {"fam": "a", "x": 1.0}, {"fam": "b", "x": 2.0}, {"fam": "a", "x": 1.0},
               {"fam": "c", "x": 4.0}, {"fam": "a", "x": 5.0}]
    s = summarize_case_file(write_case(tmp_path, "opt", 0, outs, configs=configs))
    assert (s.n_trials, s.n_ok, s.n_infeasible, s.n_early_stopped, s.n_crashed, s.n_timeout) == (6, 3, 1, 1, 1, 1)
    assert s.n_wasted == 3 and s.n_duplicates == 1
    assert s.error_kinds == {"oom": 1, "timeout": 1}
    assert s.best == 7.0 and s.best_family_value == "c" and s.worst_feasible == 3.0
    assert s.first_feasible_trial == 3 and s.first_feasible_cost == pytest.approx(3.5)
    assert s.total_cost == pytest.approx(6.5)
    assert [v if not math.isnan(v) else None for v in s.best_curve] == [None, None, 3.0, 3.0, 7.0, 7.0]
    assert list(s.cost_curve) == pytest.approx([0.5, 1.5, 3.5, 4.5, 5.5, 6.5])
    assert s.status == "completed"


def test_torn_last_line_is_skipped_and_reported(tmp_path):
    path = write_case(tmp_path, "opt", 0, [outcome("ok", 1.0)], end=False, torn=True)
    s = summarize_case_file(path)
    assert s.n_trials == 1 and s.status == "unfinished"
    assert any("torn last line" in p for p in s.problems)


def test_groups_never_mix_signatures_or_budgets(tmp_path):
    write_case(tmp_path / "a", "opt", 0, [outcome("ok", 1.0)] * 3)
    write_case(tmp_path / "b", "opt", 0, [outcome("ok", 1.0)] * 4)
    write_case(tmp_path / "c", "opt", 0, [outcome("ok", 1.0)] * 3, signature="sig2")
    groups = group_summaries(iter_summaries([tmp_path]))
    assert list(groups) == [GroupKey("toy", "sig1", 3), GroupKey("toy", "sig2", 3), GroupKey("toy", "sig1", 4)]


def test_row_label_names_only_differing_params():
    variants = [{"a": 1, "b": 2}, {"a": 1, "b": 3}]
    assert row_label("tba", {"a": 1, "b": 3}, variants) == "tba[b=3]"
    assert row_label("tba", {"a": 1}, [{"a": 1}]) == "tba"


# -- metrics --------------------------------------------------------------------------------------
def _board(tmp_path, **kw):
    return build_leaderboard([tmp_path], **kw)


def test_seeds_without_feasible_are_penalised_not_dropped(tmp_path):
    write_case(tmp_path, "random", 0, [outcome("ok", 2.0), outcome("ok", 4.0)])
    write_case(tmp_path, "random", 1, [outcome("ok", 6.0), outcome("crashed", kind="runtime")])
    write_case(tmp_path, "opt", 0, [outcome("crashed", kind="runtime"), outcome("infeasible", 50.0)])
    write_case(tmp_path, "opt", 1, [outcome("ok", 9.0), outcome("ok", 8.0)])
    g = _board(tmp_path).groups[0]
    assert g.penalty == 2.0  # the task declares no penalty: the worst feasible objective any run observed
    assert g.context.penalty_source == "undeclared"
    opt = g.row("opt")
    assert opt.seeds == 2 and opt.success == 0.5
    assert opt.best_by_seed == {0: 2.0, 1: 9.0}
    assert opt.best.mean == pytest.approx(5.5)
    assert opt.ttff_trials == pytest.approx((3 + 1) / 2)  # budget + 1 for the seed that found nothing
    assert opt.waste == pytest.approx(0.5)
    rnd = g.row("random")
    assert rnd.regret.mean == pytest.approx(((10 - 4) + (10 - 6)) / 2)
    assert rnd.normalised.mean == pytest.approx(1.0)
    assert opt.normalised.mean == pytest.approx(((10 - 2) / 5 + (10 - 9) / 5) / 2)


def test_regret_is_clipped_and_direction_respected(tmp_path):
    # minimisation, known optimum 10: a noisy 9.5 is clipped to regret 0
    write_case(tmp_path, "random", 0, [outcome("ok", 12.0)], direction="minimize")
    write_case(tmp_path, "opt", 0, [outcome("ok", 9.5), outcome("ok", 30.0)], direction="minimize", budget=1)
    g = _board(tmp_path).groups[0]
    assert g.row("opt").regret.mean == 0.0 and g.row("opt").best.mean == 9.5
    assert g.row("random").regret.mean == pytest.approx(2.0)
    assert g.penalty == 30.0  # worst = highest when minimising
    assert [r.label for r in g.rows] == ["opt", "random"]


def test_discovery_by_best_family(tmp_path):
    fam = lambda f: [{"fam": f, "x": 1.0}]  # noqa: E731
    write_case(tmp_path, "opt", 0, [outcome("ok", 5.0)], best_family="b", configs=fam("b"))
    write_case(tmp_path, "opt", 1, [outcome("ok", 6.0)], best_family="b", configs=fam("a"))
    write_case(tmp_path, "opt", 2, [outcome("infeasible", 6.0)], best_family="b", configs=fam("b"))
    g = _board(tmp_path).groups[0]
    assert g.row("opt").discovery == pytest.approx(1 / 3)
    assert "fam = b" in g.discovery_rule


def test_discovery_by_regret_tolerance_when_no_best_family(tmp_path):
    for seed, v in enumerate([0.0, 2.0]):  # random regrets 10 and 8: mean 9, tolerance 0.05*9 = 0.45
        write_case(tmp_path, "random", seed, [outcome("ok", v)])
    for seed, v in enumerate([9.7, 9.0]):
        write_case(tmp_path, "opt", seed, [outcome("ok", v)])
    g = _board(tmp_path).groups[0]
    assert g.row("opt").discovery == 0.5 and g.row("random").discovery == 0.0
    assert "0.45" in g.discovery_rule
    g2 = _board(tmp_path, discovery_tol=0.2).groups[0]
    assert g2.row("opt").discovery == 1.0


def test_no_random_rows_means_no_normalised_score(tmp_path):
    write_case(tmp_path, "opt", 0, [outcome("ok", 1.0)])
    g = _board(tmp_path).groups[0]
    assert g.row("opt").normalised is None and g.row("opt").discovery is None
    assert "not defined" in g.discovery_rule


def test_significant_winner_is_marked(tmp_path):
    for seed in range(10):
        write_case(tmp_path, "random", seed, [outcome("ok", 1.0 + 0.01 * seed)])
        write_case(tmp_path, "good", seed, [outcome("ok", 8.0 + 0.01 * seed)])
    board = _board(tmp_path)
    g = board.groups[0]
    assert g.row("good").wins == ["random"] and g.row("random").wins == []
    assert board.overall.labels == ["good", "random"] and board.overall.avg_rank["good"] == 1.0


@pytest.mark.slow
def test_a_table_too_small_for_any_significant_pair_says_so(tmp_path):
    """10 seeds and 12 optimizers (66 pairs): even if one optimizer beats another on every seed, the exact
    Wilcoxon p is 2/2**10 and Holm's first step makes it 66 times that, 0.129 > 0.05."""
    for k in range(12):
        for seed in range(10):
            write_case(tmp_path, f"opt{k:02d}", seed, [outcome("ok", 1.0 + k + 0.001 * seed)])
    board = _board(tmp_path)
    g = board.groups[0]
    assert all(not r.wins for r in g.rows)  # every optimizer beats the next on every seed, yet nothing shows
    floor = significance_floor(g.tests, 0.05)
    assert (floor.n_pairs, floor.n_blocks) == (66, 10)
    assert floor.smallest_p_holm == pytest.approx(66 * 2 / 2 ** 10)
    assert not floor.can_show_a_difference and floor.blocks_needed == 12
    assert min(t.p_holm for t in g.tests) >= floor.smallest_p_holm - 1e-12  # the floor really is a floor
    text = render(board, "github")
    assert "cannot show a significant pair" in text and "At least 12 seeds" in text
    data = json.loads(render(board, "json"))
    assert data["groups"][0]["significance_floor"]["can_show_a_difference"] is False


def test_a_table_large_enough_has_no_floor_note(tmp_path):
    for seed in range(10):
        write_case(tmp_path, "random", seed, [outcome("ok", 1.0 + 0.01 * seed)])
        write_case(tmp_path, "good", seed, [outcome("ok", 8.0 + 0.01 * seed)])
    board = _board(tmp_path)
    assert significance_floor(board.groups[0].tests).can_show_a_difference
    assert "cannot show a significant pair" not in render(board, "github")


def test_smallest_holm_p_and_blocks_needed():
    assert smallest_holm_p(1, 5) == pytest.approx(2 / 32)
    assert smallest_holm_p(55, 20) == pytest.approx(55 * 2 / 2 ** 20)
    assert smallest_holm_p(3, 0) == 1.0
    for m in (1, 10, 55, 66, 136):
        floor = significance_floor([pairwise_wilcoxon_holm({"a": {0: 0.0}, "b": {0: 1.0}})[0]] * m)
        n = floor.blocks_needed
        assert smallest_holm_p(m, n) < 0.05 <= smallest_holm_p(m, n - 1)


# -- statistics -----------------------------------------------------------------------------------
def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    x = [1.0, 2.0, 3.0, 4.0, 10.0]
    lo, hi = bootstrap_mean_ci(x, seed_text="row")
    assert (lo, hi) == bootstrap_mean_ci(x, seed_text="row")
    assert lo < np.mean(x) < hi
    assert bootstrap_mean_ci([3.0], seed_text="one") == (3.0, 3.0)


def test_ranks_friedman_and_wilcoxon():
    rng = np.random.default_rng(0)
    losses = np.column_stack([rng.normal(0, 1, 30), rng.normal(1, 1, 30), rng.normal(3, 1, 30)])
    ranks = average_ranks(losses)
    assert ranks[0] < ranks[1] < ranks[2]
    stat, p = friedman(losses)
    assert p < 0.001
    assert friedman(losses[:, :2]) is None  # two methods: undefined
    tests = pairwise_wilcoxon_holm({n: dict(enumerate(losses[:, j])) for j, n in enumerate("abc")})
    winners = {(t.a, t.b): t.winner for t in tests}
    assert winners[("a", "c")] == "a" and winners[("b", "c")] == "b"
    tied = pairwise_wilcoxon_holm({"x": {0: 1.0, 1: 2.0}, "y": {0: 1.0, 1: 2.0}})
    assert tied[0].p == 1.0 and tied[0].winner is None


# -- rendering and plots --------------------------------------------------------------------------
def test_number_format():
    assert [fmt_num(v) for v in (0.0, -2.148, 240.19, -207652.4, 0.000012, None)] == \
        ["0", "-2.15", "240", "-207652", "1.20e-05", "—"]


def _small_board(tmp_path):
    for seed in range(3):
        write_case(tmp_path, "random", seed, [outcome("crashed", kind="oom"), outcome("ok", 1.0 + seed)])
        write_case(tmp_path, "good", seed, [outcome("ok", 5.0 + seed), outcome("infeasible", 9.0)])
        write_case(tmp_path, "other", seed, [outcome("ok", 2.0 + seed), outcome("ok", 3.0)])
    return _board(tmp_path)


def test_all_formats_render(tmp_path):
    board = _small_board(tmp_path)
    md = render(board, "github", plots_rel="plots")
    assert "| optimizer" in md and "## Across tasks" in md and "](plots/critical-difference.png)" in md
    assert "Friedman test" in md and "penalty" in md
    assert render(board, "github", plots_rel="plots") == md  # deterministic
    assert "\\begin{tabular}" in render(board, "latex") and "\\section*" in render(board, "latex")
    page = render(board, "html")
    assert page.startswith("<!DOCTYPE html>") and "<meta charset=\"utf-8\">" in page and "<style>" in page
    # the summary's ranking and task list, the table, the across-task ranking and its tests
    assert page.count("<table class=\"sortable\">") == 5
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert {r["optimizer"] for r in rows} == {"random", "good", "other"}
    data = json.loads(render(board, "json"))
    assert data["groups"][0]["rows"][0]["optimizer"] == "good"
    assert data["overall"]["optimizers"][0] == "good"


def test_reference_rows_are_shown_apart(tmp_path):
    ref = tmp_path / "refs.json"
    ref.write_text(json.dumps({"references": [{"task_label": "toy", "budget": 2, "source": "Paper X, Table 1",
                                               "rows": [{"label": "Thing", "maps_to": "good", "best": -2.05,
                                                         "best_std": 0.71, "waste": 0.3}]}]}))
    (tmp_path / "runs").mkdir()
    board = _small_board(tmp_path / "runs")
    board.references = load_references(ref)
    md = render(board, "github")
    assert "Paper X, Table 1" in md and "-2.05 ± 0.71" in md
    assert "Thing" not in md.split("## Across tasks")[1]  # never in the comparison


def test_plots_are_written(tmp_path):
    from deploybench.scoring.plots import write_plots

    board = _small_board(tmp_path / "runs")
    written = write_plots(board, tmp_path / "plots")
    names = {p.name for p in written}
    assert "critical-difference.png" in names and "critical-difference.svg" in names
    assert sum(n.endswith("-trials.png") for n in names) == 1
    assert all(p.stat().st_size > 1000 for p in written)
    assert "<dc:date>" not in (tmp_path / "plots" / "critical-difference.svg").read_text()


# -- the task's penalty ---------------------------------------------------------------------------
def test_penalty_is_the_tasks_and_never_moves_with_other_optimizers(tmp_path):
    """A seed that found nothing scores the penalty its task declared (recorded in the header):
    adding an unrelated optimizer, however bad, changes no other row."""
    def board_with(extra: bool):
        root = tmp_path / ("with" if extra else "without")
        write_case(root, "random", 0, [outcome("ok", 2.0)], penalty=-50.0)
        write_case(root, "opt", 0, [outcome("crashed", kind="runtime")], penalty=-50.0)
        write_case(root, "opt", 1, [outcome("ok", 9.0)], penalty=-50.0)
        if extra:
            write_case(root, "awful", 0, [outcome("ok", -40.0)], penalty=-50.0)
        return _board(root)

    before, after = board_with(False).groups[0], board_with(True).groups[0]
    assert before.penalty == after.penalty == -50.0 and after.context.penalty_source == "task"
    assert before.row("opt").best_by_seed == after.row("opt").best_by_seed == {0: -50.0, 1: 9.0}
    assert before.row("opt").best.mean == after.row("opt").best.mean == pytest.approx(-20.5)
    md = render(board_with(True), "github")
    assert "the task's penalty, -50" in md and "does not depend on which optimizers" in md


def test_records_without_a_penalty_fall_back_and_say_so(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for root, old_header in ((old, True), (new, False)):
        write_case(root, "opt", 0, [outcome("ok", 3.0), outcome("ok", 5.0)], old_header=old_header)
        write_case(root, "opt", 1, [outcome("crashed", kind="oom")], budget=2, old_header=old_header)
    board = _board(old)  # records written before the harness stored the penalty: rerun them
    g = board.groups[0]
    assert g.context.penalty_source == "observed" and g.row("opt").best_by_seed == {0: 5.0, 1: 3.0}
    md = render(board, "github")
    assert "(observed, not declared)" in md and "do not carry the task's penalty" in md
    board = _board(new)  # a task that declares no penalty: rerunning would not change it, so do not say so
    assert board.groups[0].context.penalty_source == "undeclared"
    md = render(board, "github")
    assert "because the task declares no penalty" in md and "rerun the cases" not in md


@pytest.mark.parametrize("name, witness, noise", [
    ("crashy_branin", {"mode": "B", "x1": 15.0, "x2": 0.0, "resolution": 10}, 0.0),
    ("crash_cliff", {"accelerator": "none", "x": 0.0, "y": 0.0, "unroll": 8}, 0.0),
    ("hierarchical_rosenbrock", {"mode": "full", "x1": -5.0, "x2": -5.0, "x3": -5.0, "x4": -5.0, "x5": -5.0,
                                 "n_iters": 1}, 0.5),
])
def test_synthetic_penalties_are_the_worst_feasible_objective(name, witness, noise):
    """The declared penalty is reached (within ten noise sd) by a feasible witness, and no feasible
    configuration of 3000 sampled ones scores below it."""
    from deploybench.task import EvalContext
    from deploybench.tasks.synthetic import CrashCliff, CrashyBranin, HierarchicalRosenbrock

    task = {"crashy_branin": CrashyBranin, "crash_cliff": CrashCliff,
            "hierarchical_rosenbrock": HierarchicalRosenbrock}[name]()
    penalty = task.metadata.penalty
    o = task.evaluate(witness, EvalContext(seed=0, trial=0))
    assert o.status == "ok" and penalty <= o.objective <= penalty + 20 * noise + 1e-9
    rng = np.random.default_rng(0)
    for i in range(3000):
        o = task.evaluate(task.space.sample(rng), EvalContext(seed=1, trial=i))
        if o.status == "ok":
            assert o.objective >= penalty


def test_replay_penalty_is_below_every_feasible_measurement():
    from deploybench.tasks.replay import build_replay_task

    task = build_replay_task("edge_tight", "cpu")
    medians = [t.objective for t in task.truth.configs.values() if t.objective is not None]
    assert task.metadata.penalty is not None and task.metadata.penalty <= min(medians)
    assert task.metadata.penalty < task.metadata.known_optimum


# -- BCa intervals, comparisons over tables ---------------------------------------------------------
def test_intervals_are_scipy_bca_with_a_percentile_fallback():
    from scipy import stats

    from deploybench.scoring.statistics import _rng

    skewed = [5.0] * 15 + [-60.0, -80.0, 4.0, 6.0, 5.5]  # a few penalised seeds: a long lower tail
    ours = bootstrap_mean_ci(skewed, seed_text="row")
    ref = stats.bootstrap((np.array(skewed),), np.mean, n_resamples=2000, method="BCa", random_state=_rng("row"))
    assert ours == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    percentile = bootstrap_mean_ci(skewed, seed_text="row", method="percentile")
    assert ours != pytest.approx(percentile)  # BCa corrects for the skew
    lo, hi = bootstrap_mean_ci([5.0] * 19 + [-273.0], seed_text="x")  # BCa's jackknife degenerates here
    assert math.isfinite(lo) and math.isfinite(hi) and lo < np.mean([5.0] * 19 + [-273.0]) <= hi


def test_ranks_friedman_and_cd_are_over_tables(tmp_path):
    from deploybench.scoring.statistics import nemenyi_cd

    for t, signature in enumerate(["s1", "s2", "s3", "s4"]):
        for seed in range(5):
            for name, value in (("random", 1.0), ("good", 8.0), ("mid", 4.0 + (t == 0) * 10)):
                write_case(tmp_path, name, seed, [outcome("ok", value + 0.01 * seed)], task=f"t{t}",
                           signature=signature, penalty=-1.0)
    o = _board(tmp_path).overall
    assert o.n_tables == 4 and o.n_blocks == 20  # ranks over 4 tables; the Wilcoxon pairs over 20 (table, seed)
    assert o.avg_rank == {"good": pytest.approx(1.25), "mid": pytest.approx(1.75), "random": pytest.approx(3.0)}
    assert o.cd == pytest.approx(nemenyi_cd(3, 4))
    md = render(_board(tmp_path), "github")
    assert "Friedman test over the 4 tables" in md and "over 4 tables" in md and "(20 pairs)" in md


def test_a_table_with_more_seeds_does_not_outweigh_the_others_in_the_seed_pair_tests(tmp_path):
    # t0 has 50 seeds where "a" beats "b"; t1 and t2 have 5 seeds where "b" beats "a"
    for t, (signature, seeds, a_wins) in enumerate([("s0", 50, True), ("s1", 5, False), ("s2", 5, False)]):
        for seed in range(seeds):
            better, worse = (("a", "b") if a_wins else ("b", "a"))
            write_case(tmp_path, better, seed, [outcome("ok", 9.0 + 0.01 * seed)], task=f"t{t}", signature=signature,
                       penalty=-1.0)
            write_case(tmp_path, worse, seed, [outcome("ok", 1.0 + 0.01 * seed)], task=f"t{t}", signature=signature,
                       penalty=-1.0)
    o = _board(tmp_path).overall
    assert o.n_blocks == 15  # seeds 0-4 of each table, not the 50 + 5 + 5 the tables hold
    (test,) = o.tests
    assert test.winner is None or test.winner == "b"  # the 45 extra seeds of t0 cannot make "a" the winner
    md = render(_board(tmp_path), "github")
    assert "(15 pairs)" in md and "contributes the seeds every table has" in md


def test_nemenyi_cliques_join_ranks_closer_than_cd():
    from deploybench.scoring.statistics import nemenyi_cliques

    ranks = {"a": 1.0, "b": 1.5, "c": 3.2, "d": 3.4}
    assert nemenyi_cliques(list(ranks), ranks, 1.0) == [(0, 1), (2, 3)]
    assert nemenyi_cliques(list(ranks), ranks, 5.0) == [(0, 3)]


# -- columns are Metric classes -----------------------------------------------------------------------
def test_every_builtin_column_is_a_metric_and_one_class_adds_a_column(tmp_path):
    from deploybench.scoring import BUILTIN_COLUMNS, Interval, Metric

    assert all(isinstance(m, Metric) for m in BUILTIN_COLUMNS)

    class MedianBest:  # what adding a built-in column takes: this class, listed once
        name = "median best"
        key = "median_best"
        description = "median over seeds of the penalised best objective"

        def compute(self, cases):
            return Interval(float(np.median([cases.context.penalised(c) for c in cases])), 0.0, 0.0)

        def describe(self, context):
            return f"**median best**: median of the best {context.objective_metric} over seeds."

    for seed in range(3):
        write_case(tmp_path, "opt", seed, [outcome("ok", 1.0 + seed)], penalty=0.0)
    board = _board(tmp_path, extra_metrics=[MedianBest()])
    md = render(board, "github")
    header = next(line for line in md.splitlines() if line.startswith("| optimizer"))
    assert "median best" in header and "**median best**: median of the best f over seeds." in md
    row = next(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert float(row["median_best_mean"]) == 2.0 and float(row["best_mean"]) == 2.0
    data = json.loads(render(board, "json"))
    assert data["groups"][0]["rows"][0]["median_best"]["mean"] == 2.0
    assert "median_best" in data["groups"][0]["columns"]


# -- reading compressed records and variant folders ---------------------------------------------------
def test_gzipped_case_files_and_variant_folders_are_read(tmp_path):
    import gzip
    import shutil

    plain = write_case(tmp_path / "a", "opt", 0, [outcome("crashed", kind="oom"), outcome("ok", 4.0)])
    variant = tmp_path / "b" / "toy" / "opt[T_init=0.9]"
    variant.mkdir(parents=True)
    with open(plain, "rb") as src, gzip.open(variant / "seed_0.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    paths = list(iter_summaries([tmp_path / "b"]))
    assert len(paths) == 1
    a, b = summarize_case_file(plain), paths[0]
    assert (b.n_trials, b.best, b.n_crashed, list(b.best_curve)[1:]) == (a.n_trials, a.best, a.n_crashed,
                                                                          list(a.best_curve)[1:])


# -- the one summary ----------------------------------------------------------------------------------
def test_summarize_gives_the_answer_the_run_summary_and_leaderboard_share(tmp_path):
    from deploybench.scoring import summarize

    best = {"fam": "b", "x": 1.0}
    write_case(tmp_path, "opt", 0, [outcome("ok", 6.0), outcome("ok", 9.0)], configs=[{"fam": "a", "x": 0.0}, best],
               penalty=-5.0)
    write_case(tmp_path, "opt", 1, [outcome("ok", 9.0)], configs=[best], penalty=-5.0, budget=2)
    write_case(tmp_path, "opt", 2, [outcome("crashed", kind="oom")], penalty=-5.0, budget=2)
    (group,) = summarize([tmp_path])
    row = group.row("opt")
    assert row.best.mean == pytest.approx((9.0 + 9.0 - 5.0) / 3) and row.success == pytest.approx(2 / 3)
    assert (row.answer.config, row.answer.objective, row.answer.seed, row.answer.trial) == (best, 9.0, 0, 2)
    assert row.answer.seeds_found == 2 and row.answer.regret == pytest.approx(OPTIMUM - 9.0)
    board = _board(tmp_path)
    assert board.groups[0].row("opt").best == row.best  # the leaderboard shows the same number
    quick = summarize([tmp_path], statistics=False)[0].row("opt")  # the run summary's call: means only
    assert quick.best.mean == row.best.mean and math.isnan(quick.best.lo) and quick.answer == row.answer


def test_plot_axes_fit_the_plotted_statistics_and_styles_stay_distinct():
    """The value axis spans the means and bands drawn (the issue: a regret axis cut at per-seed
    values hid final means of 0.003); eight optimizers get eight distinct colour/style pairs."""
    from deploybench.scoring.plots import _fit_value_axis, _pyplot, optimizer_styles

    plt = _pyplot()
    fig, ax = plt.subplots()
    means = np.array([0.07, 0.02, 0.003])
    _fit_value_axis(ax, True, [means, means * 0.5, means * 2.0])
    lo, hi = ax.get_ylim()
    assert ax.get_yscale() == "log" and lo < 0.0015 and hi > 0.14
    _fit_value_axis(ax2 := plt.subplots()[1], False, [np.array([-3.0, -1.0]), np.array([-4.0, -0.5])])
    lo, hi = ax2.get_ylim()
    assert lo < -4.0 and -0.5 < hi < 0.0
    plt.close("all")
    styles = optimizer_styles([f"opt{i}" for i in range(8)])
    assert len({(s["color"], str(s["linestyle"])) for s in styles.values()}) == 8
    assert len({s["color"] for s in styles.values()}) == 8
