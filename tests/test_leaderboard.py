"""``deploybench leaderboard`` end to end: the published README, --check, formats, plugin columns."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from conftest import FIXTURES

from deploybench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "leaderboard"


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    """Random search on crashy_branin, 3 seeds, at two budgets (so two tables), in two result folders."""
    base = tmp_path_factory.mktemp("lb")
    dirs = []
    for budget in ("6", "9"):
        out = base / f"runs_b{budget}"
        assert main(["run", "-o", "random", "-t", "crashy_branin", "--seeds", "3", "--budget", budget,
                     "--out", str(out), "-q"]) == 0
        dirs.append(str(out))
    return dirs


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args) -> (exit code, stdout, stderr)``, in process (fast); tests/fixtures is importable."""
    monkeypatch.syspath_prepend(str(FIXTURES))

    def _run(*args: str):
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def test_published_readme_matches_its_records(capsys, monkeypatch):
    """The committed leaderboard/README.md is exactly what its committed records give, with the
    metric columns the installed plugins add (as ``deploybench leaderboard --check`` renders it)."""
    if not (PUBLISHED / "runs").is_dir():
        pytest.skip("no published records in this checkout")
    monkeypatch.chdir(ROOT)  # the published layout is found from the repository root
    code = main(["leaderboard", "--check"])
    out, err = capsys.readouterr()
    assert code == 0, "leaderboard/README.md is out of date: run leaderboard/regenerate.sh (SKIP_RUNS=1)\n" + out + err
    committed = (PUBLISHED / "README.md").read_text(encoding="utf-8")
    assert "rec. truly feasible" in committed  # the replay plugin's column is part of the published tables
    for image in [line.split("](")[1].rstrip(")") for line in committed.splitlines() if line.startswith("![")]:
        assert (PUBLISHED / image).is_file(), f"README links a missing figure {image}"


def test_check_passes_then_fails_with_a_diff(cli, small_runs, tmp_path):
    readme = tmp_path / "README.md"
    code, _, err = cli("leaderboard", *small_runs, "--out", str(readme))
    assert code == 0, err
    text = readme.read_text()
    assert text.count("## crashy_branin (B=") == 2  # budgets 6 and 9 are separate tables
    code, out, err = cli("leaderboard", *small_runs, "--out", str(readme), "--check")
    assert code == 0, out + err
    assert "up to date" in out
    readme.write_text(text.replace("| random", "| randomised", 1))
    code, out, err = cli("leaderboard", *small_runs, "--out", str(readme), "--check")
    assert code == 1
    assert "-| randomised" in out and "+| random" in out
    assert "out of date" in err


def test_formats_and_plots(cli, small_runs, tmp_path):
    code, out, err = cli("leaderboard", *small_runs, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert [g["budget"] for g in data["groups"]] == [6, 9]
    assert data["groups"][0]["rows"][0]["seeds"] == 3
    code, out, err = cli("leaderboard", *small_runs, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and rows[0]["optimizer"] == "random" and float(rows[0]["normalised_mean"]) == pytest.approx(1.0)
    code, out, err = cli("leaderboard", *small_runs, "--format", "latex", "--plots", str(tmp_path / "plots"))
    assert code == 0, err
    assert "\\toprule" in out
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 2 * 3  # trials, cost and waste per table; no CD diagram with one optimizer
    assert len(list((tmp_path / "plots").glob("*.svg"))) == len(pngs)


def test_plugin_metric_column(cli, small_runs, monkeypatch):
    code, out, err = cli("-p", "leaderboard_metric_plugin", "leaderboard", *small_runs)
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.startswith("| optimizer"))
    assert "crash share" in header
    assert "**crash share** (plugin): share of all trials of the row that crashed" in out
    monkeypatch.setenv("DEPLOYBENCH_TEST_BROKEN_METRIC", "1")
    code, out, err = cli("-p", "leaderboard_metric_plugin", "leaderboard", *small_runs)
    assert code == 0, err  # a broken plugin metric is reported, not fatal
    assert "broken on purpose" in err
    header = next(line for line in out.splitlines() if line.startswith("| optimizer"))
    assert "broken" in header


def test_usage_errors(cli, tmp_path):
    code, _, err = cli("leaderboard", str(tmp_path / "nope"))
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("leaderboard", str(tmp_path / "empty"))
    assert code == 2 and "no case files" in err
    code, _, err = cli("leaderboard", str(tmp_path / "empty"), "--check")
    assert code == 2 and "--out" in err
