"""``tpe_hyperband``: TPE with Optuna's Hyperband pruner over the probe and full levels."""

from __future__ import annotations

from deploybench.fidelity import split_suggestion
from deploybench.task import EvalContext
from deploybench.tasks.synthetic_mf import CrashyBraninMF
from deploybench.testing import parametrize_with_checks
from deploybench_optimizers.tpe_hyperband import TPEHyperband
from deploybench import OptimizerContext


@parametrize_with_checks([TPEHyperband])
def test_tpe_hyperband_conformance(optimizer, check):
    check(optimizer)


def test_only_feasible_unpruned_probes_reach_full():
    task = CrashyBraninMF()
    opt = TPEHyperband(OptimizerContext(task.space, objective=task.objective, constraints=task.constraints,
                                        budget=120, seed=0, fidelities=task.fidelities, budget_seconds=60.0))
    probes, fulls = {}, []
    for i in range(120):
        config, level = split_suggestion(opt.ask())
        o = task.evaluate_at(config, level, EvalContext(seed=0, trial=i))
        opt.tell(config, o)
        key = task.space.key(config)
        assert level in ("probe", "full")  # never the biased simulator
        if level == "probe":
            probes[key] = o
        else:
            fulls.append(key)
            assert probes[key].feasible  # promoted only after a feasible probe
    feasible_probes = sum(o.feasible for o in probes.values())
    assert 0 < len(fulls) < feasible_probes  # Hyperband pruned some feasible probes
    assert len(set(fulls)) == len(fulls)
