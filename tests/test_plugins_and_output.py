"""Plugins load lazily and report author mistakes; a run ends with an answer a user can act on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import cli_env

from deploybench.plugins import create_plugin_manager
from deploybench.results import read_case_file

HEAVY = ("optuna", "sklearn", "scipy", "smac", "nevergrad", "torch", "onnxruntime")


def _imported_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which heavy libraries and deploybench modules it imported."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules],
                           "plugins_module": "deploybench.plugins" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_start_up_imports_only_what_the_command_uses(tmp_path):
    """A fresh interpreter is the point here: sys.modules shows what each command imported."""
    version = _imported_after("""
        from deploybench.cli.main import main
        assert main(["--version"]) == 0
    """)
    assert version == {"heavy": [], "plugins_module": False}  # --version builds no plugin manager
    listing = _imported_after("""
        from deploybench.cli.main import main
        assert main(["list"]) == 0
    """)
    assert listing["heavy"] == []  # every plugin registered, no optimizer library imported
    run = _imported_after(f"""
        from deploybench.cli.main import main
        assert main(["run", "-o", "random", "-t", "crashy_branin", "--budget", "3", "--out", {str(tmp_path / 'r')!r}]) == 0
    """)
    assert run["heavy"] == []  # random search on an analytic task needs none of them
    tpe = _imported_after(f"""
        from deploybench.cli.main import main
        assert main(["run", "-o", "tpe", "-t", "crashy_branin", "--budget", "3", "--out", {str(tmp_path / 't')!r}]) == 0
    """)
    assert "optuna" in tpe["heavy"] and "smac" not in tpe["heavy"] and "nevergrad" not in tpe["heavy"]


def test_optimizer_specs_list_without_importing_and_load_on_use():
    pm = create_plugin_manager()
    specs = pm.optimizer_specs()
    assert specs["tpe"].import_path == "deploybench_optimizers.tpe:TPE" and specs["tpe"].description
    cls = pm.get_optimizer_class("tpe")
    assert cls.name == "tpe" and cls.__module__ == "deploybench_optimizers.tpe"


def _plugin(root: Path, name: str, body: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.py").write_text(textwrap.dedent(body))
    return root


def test_misspelt_and_undecorated_hooks_are_broken_plugins_naming_the_hook(cli, tmp_path):
    site = _plugin(tmp_path / "site", "misspelt", """
        from deploybench import hookimpl
        from deploybench_optimizers.random_search import RandomSearch

        @hookimpl
        def deploybench_register_optimiser():
            return [RandomSearch]
    """)
    _plugin(site, "undecorated", """
        def deploybench_register_tasks():
            return []
    """)
    env = cli_env([site])
    proc = cli("-p", "misspelt", "-p", "undecorated", "plugins", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert "BROKEN" in rows["misspelt"]
    assert "unknown hook 'deploybench_register_optimiser'" in proc.stdout
    assert "did you mean 'deploybench_register_optimizers'?" in proc.stdout
    assert "BROKEN" in rows["undecorated"] and "not decorated with @deploybench.hookimpl" in rows["undecorated"]
    # the others still work, and a run says which plugins broke
    proc = cli("-p", "misspelt", "run", "-o", "random", "-t", "crashy_branin", "--budget", "3",
               "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "BROKEN PLUGIN misspelt" in proc.stdout and "1 cases completed" in proc.stdout
    listed = cli("-p", "misspelt", "list", "optimizers", env=env)
    assert listed.returncode == 0 and "random" in listed.stdout
    assert "note: 1 plugin(s) failed to load and are missing above: misspelt" in listed.stdout
    assert "`deploybench plugins` shows why" in listed.stdout


def test_bad_names_are_broken_and_executor_clashes_are_usage_errors(cli, tmp_path):
    site = _plugin(tmp_path / "site", "badnames", """
        from deploybench import hookimpl
        from deploybench_optimizers.random_search import RandomSearch

        class Escaping(RandomSearch):
            name = "../escape"

        class Bracketed(RandomSearch):
            name = "a[b]::c"

        @hookimpl
        def deploybench_register_optimizers():
            return [Escaping, Bracketed]
    """)
    _plugin(site, "clash", """
        from deploybench import hookimpl

        class Serial:
            name = "serial"

            def run(self, cases, options, **kwargs):
                return iter(())

        @hookimpl
        def deploybench_register_executors():
            return [Serial()]
    """)
    env = cli_env([site])
    proc = cli("-p", "badnames", "list", "optimizers", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "escape" not in proc.stdout and "a[b]" not in proc.stdout and "random" in proc.stdout
    proc = cli("-p", "badnames", "plugins", env=env)
    assert "optimizer name '../escape' is not allowed" in proc.stdout
    assert "optimizer name 'a[b]::c' is not allowed" in proc.stdout
    proc = cli("-p", "clash", "list", "executors", env=env)
    assert proc.returncode == 2
    assert "executor 'serial' is registered by both 'clash' and 'executors'; block one with -p no:NAME" in proc.stderr


def test_an_optimizer_whose_module_cannot_be_imported(cli, tmp_path):
    site = _plugin(tmp_path / "site", "missing_lib", """
        from deploybench import OptimizerSpec, hookimpl

        @hookimpl
        def deploybench_register_optimizers():
            return [OptimizerSpec("needs_lib", "no_such_module_xyz:Opt", "needs a library that is not installed")]
    """)
    env = cli_env([site])
    listed = cli("-p", "missing_lib", "list", "optimizers", env=env)
    assert "needs_lib" in listed.stdout and "needs a library that is not installed" in listed.stdout
    proc = cli("-p", "missing_lib", "run", "-o", "needs_lib", "-t", "crashy_branin", "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == 2
    assert "optimizer 'needs_lib' (plugin 'missing_lib') cannot be loaded from no_such_module_xyz:Opt" in proc.stderr
    assert "No module named 'no_such_module_xyz'" in proc.stderr
    assert not (tmp_path / "r").exists()
    proc = cli("-p", "missing_lib", "plugins", env=env)
    assert "BROKEN" in proc.stdout and "no_such_module_xyz" in proc.stdout


def test_the_answer_names_the_best_configuration_its_metrics_and_direction(cli, tmp_path):
    out = tmp_path / "r"
    proc = cli("run", "-o", "random", "-o", "tba", "-t", "crashy_branin", "--seeds", "3", "--budget", "15",
               "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    answer = proc.stdout.split("the answer: best configuration found per task")[1]
    assert "crashy_branin: maximise neg_branin (higher is better) subject to g1 <= 0, g2 <= 0" in answer
    best = float(re.search(r"best neg_branin = (\S+)", answer).group(1))
    regret = float(re.search(r"regret (\S+) to the known optimum (\S+)\)", answer).group(1))
    # the best over every case is the best any case file holds, and the regret is measured from it
    bests = [t["outcome"]["objective"] for p in out.rglob("seed_*.jsonl") for t in read_case_file(p).trials
             if t["outcome"]["status"] == "ok"]
    assert best == pytest.approx(max(bests), rel=1e-3)
    header = read_case_file(next(out.rglob("seed_0.jsonl"))).header
    assert regret == pytest.approx(header["known_optimum"] - max(bests), rel=1e-3, abs=1e-4)
    config = re.search(r"config: (.+)", answer).group(1)
    assert config.startswith("mode=") and "x1=" in config and "resolution=" in config
    reached = re.search(r"reached by: (.+?);", answer).group(1)
    assert re.fullmatch(r"(random|tba) in [1-3]/3 seeds?(, (random|tba) in [1-3]/3 seeds?)?", reached)
    assert "measured: g1 " in answer and "(limit 0)" in answer
    assert f"next: deploybench leaderboard {out}" in proc.stdout
    legend = "progress letters, one per trial: . ok (feasible), i infeasible"
    assert legend in proc.stdout  # the first run in this folder explains the letters
    again = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "15", "--out", str(out), "--resume")
    assert again.returncode == 0 and legend not in again.stdout


def test_a_task_where_nothing_feasible_was_found_says_so(cli, tmp_path):
    # random search's first suggestion for seed 1 on crashy_branin breaks constraint g1
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "1", "--seed", "1", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    assert "crashy_branin[analytic]::random[seed=1] i best=none" in proc.stdout
    answer = proc.stdout.split("the answer")[1]
    assert "no feasible configuration found in 1 case; try a larger --budget or more --seeds" in answer
    assert "best neg_branin" not in answer


def test_verbose_prints_one_line_per_trial_and_vv_every_metric_rounded(cli, tmp_path):
    proc = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "6", "-v", "--out", str(tmp_path / "v"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = lines.index("crashy_branin[analytic]::random[seed=0]")
    trials = lines[start + 1:start + 7]
    assert [int(t.split()[0]) for t in trials] == list(range(6))
    for t in trials:
        status = t.split(" -> ")[1].split()[0]
        assert status in ("ok", "infeasible", "crashed", "timeout", "early_stopped")
        if status in ("ok", "infeasible"):
            assert re.search(r"neg_branin=\S+ g[12] \S+ (<=|>) 0$", t), t
    assert lines[start + 7].startswith("crashy_branin[analytic]::random[seed=0] ")  # then the case line
    detail = cli("run", "-o", "random", "-t", "crashy_branin", "--budget", "6", "-vv", "--out", str(tmp_path / "vv"))
    body = detail.stdout.split("crashy_branin[analytic]::random[seed=0]\n")[1].split("\ncrashy_branin[analytic]")[0]
    assert body.count("      metrics: ") == sum(" -> ok " in t or " -> infeasible " in t for t in body.splitlines())
    assert body.count("cost=") == 6 and "\n\n" not in body
    decimals = re.findall(r"\d+\.\d+", body)
    assert decimals and all(len(d.replace(".", "").lstrip("0")) <= 4 for d in decimals)  # no 0.8085800000000001


def test_progress_letters_are_explained_in_help(cli):
    for args in (("--help",), ("run", "--help")):
        proc = cli(*args)
        assert proc.returncode == 0
        text = " ".join(proc.stdout.split())
        assert "progress letters, one per trial: . ok (feasible), i infeasible" in text
        assert "e early-stopped" in text and "C crashed" in text and "T timed out" in text


def test_live_without_the_live_extra_is_a_usage_error_with_the_install_command(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the [live] extra were not installed
    out = tmp_path / "r"
    proc = cli("run", "-o", "tba", "-t", "edge_tight", "--target", "live", "--out", str(out))
    assert proc.returncode == 2
    assert "--target live needs the live profiler's dependencies" in proc.stderr
    assert "missing: onnxruntime-gpu" in proc.stderr and 'pip install ".[live]"' in proc.stderr
    assert not out.exists()  # nothing ran
    proc = cli("doctor")
    assert proc.returncode == 2 and 'pip install ".[live]"' in proc.stderr


@pytest.mark.slow
def test_doctor_prints_each_probe_as_it_finishes(cli, tmp_path, monkeypatch):
    import deploybench.live.doctor as live_doctor

    seen = []

    def fake_probe(device, backend, precision, time_limit_s):
        seen.append(len(seen))
        works = precision != "fp16"
        return {"device": device, "backend": backend, "precision": precision, "works": works,
                "kind": "" if works else "unsupported", "reason": "" if works else "no fp16 kernel on this CPU",
                "device_executed": device, "seconds": 0.1}

    printed_before = []
    real_print = print

    def spy_print(*args, **kwargs):
        printed_before.append((len(seen), " ".join(map(str, args))))
        real_print(*args, **kwargs)

    monkeypatch.setattr(live_doctor, "_probe", fake_probe)
    monkeypatch.setattr("builtins.print", spy_print)
    proc = cli("doctor", "--device", "cpu", env=cli_env(DEPLOYBENCH_CACHE_DIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    progress = [(n, text) for n, text in printed_before if text.startswith("  cpu ")]
    assert len(seen) >= 9 and len(progress) == len(seen)  # every backend × precision path of the CPU
    assert [n for n, _ in progress] == list(range(1, len(seen) + 1))  # each line printed right after its probe
    assert "FAILS (unsupported: no fp16 kernel on this CPU)" in progress[1][1]
    assert "FAILS" in proc.stdout.split("\n\n")[1]  # then the table


def test_every_package_in_the_source_tree_is_installed():
    """A sub-package missing from pyproject's explicit list works from a checkout (the tests import the
    source) and breaks for every user of the installed wheel: the list must name each one."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for name, folder in config["package-dir"].items():
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder)
            package = ".".join([name, *rel.parts]) if rel.parts else name
            assert package in listed, f"{package} ({init.parent}) is not in pyproject.toml's packages"


@pytest.mark.parametrize("best, words", [
    (1267.0, "(above the known optimum 1138: this trial drew a favourable repeat"),
    (1138.0, "(the known optimum)"),
    (1000.0, "(regret 138 to the known optimum 1138)"),
])
def test_the_answer_says_when_a_noisy_best_beats_the_known_optimum(best, words):
    # a replayed table serves one recorded repeat per trial, so a fast repeat can beat the optimum
    # (defined on medians); calling that "the known optimum" would misreport what was found
    from deploybench.reporting import TaskAnswer, format_answers

    answer = TaskAnswer(task_label="server_throughput@cpu", objective_metric="throughput_sps", direction="maximize",
                    constraints=[{"metric": "latency_p99_ms", "cap": 100.0}], known_optimum=1138.0, best=best,
                    config={"model": "mobilenet_v3_small"}, metrics={"latency_p99_ms": 15.8},
                    found_by={"random": (1, 20)})
    line = format_answers([answer])[1]
    assert words in line
    assert answer.regret == max(0.0, 1138.0 - best)


@pytest.mark.slow
def test_the_run_summary_and_the_leaderboard_print_the_same_best_for_the_same_cases(cli, tmp_path):
    """The README's main command: some seeds find nothing, and both views score them with the task's
    penalty (one function, ``scoring.summary.summarize``, behind both)."""
    out = tmp_path / "r"
    proc = cli("run", "--optimizer", "tba", "--task", "edge_tight", "--seeds", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    row = next(line.split() for line in proc.stdout.splitlines() if line.startswith("edge_tight@edge  tba"))
    run_best, run_found, run_ttff = row[4], row[5], row[7]
    assert run_found != "5/5"  # the case the two views used to disagree on: a seed that found nothing
    board = cli("leaderboard", str(out))
    assert board.returncode == 0, board.stderr
    cells = [c.strip() for c in next(line for line in board.stdout.splitlines()
                                     if line.startswith("| tba ")).strip("|").split("|")]
    assert cells[2].split()[0] == run_best  # "0.728 [0.695, 0.757]"
    assert cells[3] == f"{100 * int(run_found.split('/')[0]) / 5:.0f}%"
    headers = [h.strip() for h in next(line for line in board.stdout.splitlines()
                                       if line.startswith("| optimizer")).strip("|").split("|")]
    assert cells[headers.index("TTFF trials")] == run_ttff


def test_list_optimizers_as_json_names_module_and_description(cli):
    proc = cli("list", "optimizers", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["tba"]["module"] == "deploybench_optimizers.tba" and "annealing" in info["tba"]["description"]
    bad = cli("list", "tasks", "--json")
    assert bad.returncode == 2 and "list --json lists optimizers" in bad.stderr


def test_a_session_builds_each_task_once_besides_its_cases(cli, tmp_path, monkeypatch):
    """The header, the identities, the manifest and the per-trial lines share one build of each
    (task, target); only the cases build their own."""
    from deploybench.tasks import synthetic

    builds = []
    real = synthetic.CrashyBranin.__init__

    def counting(self, *args, **kwargs):
        builds.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(synthetic.CrashyBranin, "__init__", counting)
    proc = cli("run", "-o", "random", "-o", "tba", "-t", "crashy_branin", "--seeds", "2", "--budget", "3", "-v",
               "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    cases = 4
    assert len(builds) == cases + 2  # one to check the name at collection, one for the session, one per case
