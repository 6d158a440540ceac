"""The fidelity contract: levels declared by tasks, outcomes that say which level produced them,
optimizers that ask for a level, budgets in seconds, and scoring that counts only full-fidelity finds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deploybench import Outcome, Status
from deploybench.fidelity import FULL, Fidelity, Suggestion, UnknownFidelityError, check_fidelities, split_suggestion
from deploybench.plugins import create_plugin_manager
from deploybench.results import iter_case_files, read_case_file
from deploybench.runner import Case, RunOptions, run_case
from deploybench.scoring.reading import summarize_case_file
from deploybench.collection import collect
from deploybench.task import EvalContext
from deploybench.tasks.synthetic import CrashCliff, CrashyBranin, HierarchicalRosenbrock
from deploybench.tasks.synthetic_mf import CrashyBraninMF
from deploybench.testing import ToyMFTask, check_task, check_task_fidelities

FIXTURES = Path(__file__).parent / "fixtures"
WITNESS = {"mode": "A", "x1": math.pi, "x2": 2.275, "resolution": 1}


# -- levels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("levels, words", [
    ([], "at least one"),
    ([Fidelity("a", "probe", 0.2), Fidelity("a", "probe", 0.3), FULL], "unique"),
    ([FULL, Fidelity("probe", "probe", 0.2)], "must be the last"),
    ([Fidelity("probe", "probe", 0.5), Fidelity("sim", "simulator", 0.1), FULL], "cheapest"),
    ([Fidelity("probe", "probe", 0.2), Fidelity("real", "full", 1.0)], "named 'full'"),
])
def test_badly_declared_levels_are_refused(levels, words):
    with pytest.raises(ValueError, match=words):
        check_fidelities(levels)


def test_a_level_needs_a_known_kind_and_a_positive_cost():
    with pytest.raises(ValueError, match="kind must be one of simulator, probe, full"):
        Fidelity("x", "coarse")
    with pytest.raises(ValueError, match="relative_cost must be positive"):
        Fidelity("x", "probe", 0.0)


def test_unknown_level_names_the_levels_and_the_closest():
    task = CrashyBraninMF()
    with pytest.raises(UnknownFidelityError, match=r"unknown fidelity 'prob'; this task offers sim, probe, full; "
                                                   r"did you mean 'probe'\?"):
        task.fidelity("prob")


def test_plain_configs_mean_full_fidelity():
    assert split_suggestion({"x": 1}) == ({"x": 1}, "full")
    assert split_suggestion(Suggestion({"x": 1}, "probe")) == ({"x": 1}, "probe")


# -- outcomes ------------------------------------------------------------------------------------------

def test_full_fidelity_records_are_unchanged_and_lower_levels_round_trip():
    full = Outcome(Status.OK, objective=1.0, violation={"c": 0.0}, cost_s=1.0)
    assert "fidelity" not in full.to_dict() and "predicted" not in full.to_dict()
    assert Outcome.from_dict(full.to_dict()) == full and full.counts_as_found
    sim = full.at_fidelity("sim", predicted=True)
    data = sim.to_dict()
    assert data["fidelity"] == "sim" and data["predicted"] is True
    assert Outcome.from_dict(data) == sim and not sim.counts_as_found
    probe = full.at_fidelity("probe")
    assert probe.feasible and not probe.counts_as_found


def test_a_full_outcome_cannot_be_a_prediction():
    with pytest.raises(ValueError, match="never predicted"):
        Outcome(Status.OK, objective=1.0, cost_s=1.0, predicted=True)


# -- tasks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task_cls", [CrashyBranin, HierarchicalRosenbrock, CrashCliff])
def test_single_fidelity_tasks_keep_their_signatures(task_cls):
    """The leaderboard's committed records were written before fidelities existed: the same task
    must still have the same signature, or its results would no longer compare."""
    task = task_cls()
    assert task.fidelities == (FULL,) and not task.multi_fidelity and task.default_budget_seconds is None
    archive = Path(__file__).parent.parent / "leaderboard" / "runs" / f"{task.name}.tar.xz"
    records = [p for p in iter_case_files(archive) if p.name == "seed_0.jsonl"]
    assert records, f"no committed leaderboard records of {task.name} in {archive}"
    assert {read_case_file(p).header["task_signature"] for p in records} == {task.signature()}


def test_crashy_branin_mf_passes_the_task_and_fidelity_checks():
    task = CrashyBraninMF()
    check_task(task, n=150, witness=WITNESS)
    assert task.default_budget_seconds == 60.0 and [f.name for f in task.fidelities] == ["sim", "probe", "full"]
    assert task.signature() != CrashyBranin().signature()


def test_crashy_branin_mf_levels_disagree_as_documented():
    task = CrashyBraninMF()
    ctx = EvalContext(seed=0, trial=0)
    at = {f: task.evaluate_at(WITNESS, f, ctx) for f in ("sim", "probe", "full")}
    assert at["full"] == CrashyBranin().evaluate(WITNESS, ctx)
    assert at["sim"].predicted and at["sim"].objective < at["full"].objective - 0.3  # biased: optimum elsewhere
    assert abs(at["probe"].objective - at["full"].objective) < 5 * CrashyBraninMF.PROBE_NOISE_SD
    diverges = {"mode": "C", "x1": 10.0, "x2": 1.0, "resolution": 1}  # crashes after the probe stopped
    assert task.evaluate_at(diverges, "full", ctx).failed and not task.evaluate_at(diverges, "probe", ctx).failed
    oom = {"mode": "A", "x1": 1.0, "x2": 13.0, "resolution": 8}  # the simulator's rule is too narrow
    assert task.evaluate_at(oom, "probe", ctx).failed and not task.evaluate_at(oom, "sim", ctx).failed


class _ProbeDearerThanFull(ToyMFTask):
    def evaluate(self, config, context=None):
        o = super().evaluate(config, context)
        if (context or EvalContext()).fidelity == "probe":
            return o.at_fidelity("probe") if o.failed else self.judge(dict(o.metrics), 100.0).at_fidelity("probe")
        return o


class _NoisySimulator(ToyMFTask):
    def evaluate(self, config, context=None):
        context = context or EvalContext()
        o = super().evaluate(config, context)
        if context.fidelity == "sim":
            return self.judge({**o.metrics, "score": o.objective + context.trial}, 0.01).at_fidelity("sim", True)
        return o


class _ProbeCrashesAlone(ToyMFTask):
    def evaluate(self, config, context=None):
        context = context or EvalContext()
        if context.fidelity == "probe" and config["x"] > 0.5:
            return Outcome.crashed("runtime", "probe only", cost_s=0.1).at_fidelity("probe")
        return super().evaluate(config, context)


@pytest.mark.parametrize("task_cls, words", [
    (_ProbeDearerThanFull, "fall as the level rises"),
    (_NoisySimulator, "not deterministic"),
    (_ProbeCrashesAlone, "crashed on .* but full did not"),
])
def test_fidelity_checks_catch_broken_levels(task_cls, words):
    with pytest.raises(AssertionError, match=words):
        check_task_fidelities(task_cls(), n=40)


# -- the runner ----------------------------------------------------------------------------------------

def _run(tmp_path, monkeypatch, optimizer="mf_scripted", params=(), budget=400, budget_seconds=60.0, seed=0):
    monkeypatch.syspath_prepend(str(FIXTURES))
    options = RunOptions(out_dir=str(tmp_path), plugin_args=("mf_fixtures",))
    case = Case(task="crashy_branin_mf", target="analytic", task_label="crashy_branin_mf", optimizer=optimizer,
                seed=seed, budget=budget, budget_seconds=budget_seconds, optimizer_params=tuple(params))
    result = run_case(case, options, pm=create_plugin_manager(options.plugin_args))
    return result, read_case_file(case.path(tmp_path))


def test_the_runner_evaluates_at_the_asked_level_and_stops_on_seconds(tmp_path, monkeypatch):
    result, case = _run(tmp_path, monkeypatch)
    assert result.status == "completed", result.error
    levels = [t["outcome"].get("fidelity", "full") for t in case.trials]
    assert levels[:6] == ["sim", "probe", "full", "sim", "probe", "full"]
    sims = [t["outcome"] for t in case.trials if t["outcome"].get("fidelity") == "sim"]
    assert sims and all(o["predicted"] for o in sims)
    costs = [t["outcome"]["cost_s"] for t in case.trials]
    assert sum(costs[:-1]) < 60.0 <= sum(costs)  # the last trial started under the budget and crossed it
    assert case.header["budget_seconds"] == 60.0
    # only measured full-fidelity feasible trials (or the validated recommendation) count as found
    full_ok = [t["outcome"]["objective"] for t in case.trials
               if t["outcome"]["status"] == "ok" and t["outcome"].get("fidelity", "full") == "full"]
    rec = case.end["recommendation"]
    candidates = full_ok + ([rec["outcome"]["objective"]] if rec["outcome"]["status"] == "ok" else [])
    assert result.best == max(candidates)
    assert rec["outcome"].get("fidelity", "full") == "full" and rec["reused_trial"] is None
    assert result.cost_s == pytest.approx(sum(costs))  # the validation is not charged to the budget
    summary = summarize_case_file(case.path)
    assert summary.best == result.best and summary.recommendation == rec
    assert set(summary.cost_by_fidelity) == {"sim", "probe", "full"}
    assert sum(summary.cost_by_fidelity.values()) == pytest.approx(summary.total_cost)
    assert summary.n_ok == len(full_ok) and summary.n_lower_fidelity == len(levels) - levels.count("full")
    assert "," in result.glyphs  # lower-level trials have their own progress letter


def test_a_lower_level_feasible_never_counts_as_found(tmp_path, monkeypatch):
    result, case = _run(tmp_path, monkeypatch, params=(("plan", ["sim"]), ("recommend_best", False)), budget=30)
    assert all(t["outcome"].get("fidelity") == "sim" for t in case.trials)
    assert any(t["outcome"]["status"] == "ok" for t in case.trials)
    assert result.best is None and result.ttff is None and "recommendation" not in case.end
    assert summarize_case_file(case.path).best is None


def test_an_unknown_level_ends_the_case_as_an_invalid_suggestion(tmp_path, monkeypatch):
    result, _ = _run(tmp_path, monkeypatch, params=(("plan", ["coarse"]),))
    assert result.status == "error" and result.error["stage"] == "validate"
    assert "unknown fidelity 'coarse'; this task offers sim, probe, full" in result.error["message"]


def test_resume_replays_levels(tmp_path, monkeypatch):
    first, case = _run(tmp_path, monkeypatch, budget=7, budget_seconds=None)
    assert first.n_trials == 7
    monkeypatch.syspath_prepend(str(FIXTURES))
    options = RunOptions(out_dir=str(tmp_path), plugin_args=("mf_fixtures",), resume=True)
    longer = Case(task="crashy_branin_mf", target="analytic", task_label="crashy_branin_mf", optimizer="mf_scripted",
                  seed=0, budget=12)
    path = longer.path(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # as if killed before the end line
    result = run_case(longer, options, pm=create_plugin_manager(options.plugin_args))
    assert result.status == "completed" and result.replayed == 7 and result.n_trials == 12
    assert [t["outcome"].get("fidelity", "full") for t in read_case_file(path).trials][6:9] == ["sim", "probe", "full"]


def test_optimizers_without_the_tag_only_get_full_evaluations(tmp_path, monkeypatch):
    result, case = _run(tmp_path, monkeypatch, optimizer="random", budget=400)
    assert result.status == "completed" and 15 <= result.n_trials < 60
    assert all("fidelity" not in t["outcome"] for t in case.trials) and "recommendation" not in case.end


def test_collect_takes_the_seconds_budget_from_the_task():
    pm = create_plugin_manager()
    mf, = collect(pm, tasks=["crashy_branin_mf"], optimizers=["random"])
    assert (mf.budget, mf.budget_seconds) == (400, 60.0)
    plain, = collect(pm, tasks=["crashy_branin"], optimizers=["random"])
    assert plain.budget_seconds is None
    mine, = collect(pm, tasks=["crashy_branin_mf"], optimizers=["random"], budget_seconds=10.0)
    assert mine.budget_seconds == 10.0


# -- figures for cost budgets -----------------------------------------------------------------------------

def test_cost_figures_count_only_full_fidelity_finds(tmp_path, monkeypatch):
    from deploybench.scoring.cost_figures import best_at_costs, cost_shares, cost_to_reach, disagreement, read_trace

    result, case = _run(tmp_path, monkeypatch)
    trace = read_trace(case.path)
    assert trace.total_cost == pytest.approx(result.cost_s) and trace.n_trials == result.n_trials
    cum, best, expected = 0.0, None, []
    for t in case.trials:
        o = t["outcome"]
        cum += o["cost_s"]
        if o["status"] == "ok" and o.get("fidelity", "full") == "full" and (best is None or o["objective"] > best):
            best = o["objective"]
            expected.append((cum, best))
    assert [x for step in trace.steps[: len(expected)] for x in step] == pytest.approx([x for e in expected for x in e])
    assert best_at_costs(trace, [0.0, float("inf")]) == [None, result.best]
    first_cost, first_value = trace.steps[0]
    assert cost_to_reach(trace, first_value, 0.0) == pytest.approx(first_cost)
    assert cost_to_reach(trace, result.best + 1e6, 0.01) is None
    assert sum(cost_shares(trace).values()) == pytest.approx(1.0) and set(cost_shares(trace)) == {"sim", "probe", "full"}
    assert set(disagreement(trace)) == {"sim", "probe"}


def test_disagreement_compares_verdicts_on_the_same_configuration():
    from deploybench.scoring.cost_figures import CaseTrace, disagreement

    trace = CaseTrace("maximize", [], 0.0, {}, {"probe": {"a": True, "b": True, "c": False, "d": True},
                                                 "full": {"a": True, "b": False, "c": False}}, 7)
    assert disagreement(trace) == {"probe": (3, 1)}
