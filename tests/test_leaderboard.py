"""``deploybench leaderboard`` end to end: the published README, --check, formats, plugin columns."""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import os
import re
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


@pytest.mark.slow
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
    readme.write_text(text.replace("\n| random", "\n| randomised", 1))  # the first task table's row
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


# -- the web page, opened in a real browser ----------------------------------------------------------
#: what Debian's chromium needs to run headless here (no sandbox in a container, no GPU, no network)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    import shutil

    path = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium), so the leaderboard page cannot be "
                    "opened in a real browser")
    return path


def _browser(chromium, tmp_path, *args: str) -> str:
    """Run headless chromium with a fresh profile; returns its standard output."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Dom:
    """The parts of a dumped DOM the checks need: tables (header and body cells) and figures."""

    def __init__(self, text: str) -> None:
        from html.parser import HTMLParser

        self.tables: list[dict] = []
        self.images: list[dict] = []
        self.missing = 0
        dom = self

        class Parser(HTMLParser):
            cell: list[str] | None = None
            section = ""

            def handle_starttag(self, tag, attrs):
                a = dict(attrs)
                if tag == "table":
                    dom.tables.append({"head": [], "rows": []})
                elif tag in ("thead", "tbody"):
                    self.section = tag
                elif tag == "tr" and self.section == "tbody":
                    dom.tables[-1]["rows"].append([])
                elif tag in ("th", "td"):
                    self.cell = []
                elif tag == "img":
                    dom.images.append(a)
                elif tag == "figure" and "missing" in (a.get("class") or ""):
                    dom.missing += 1

            def handle_data(self, data):
                if self.cell is not None:
                    self.cell.append(data)

            def handle_endtag(self, tag):
                if tag in ("th", "td") and self.cell is not None:
                    text = "".join(self.cell).strip()
                    if tag == "th":
                        dom.tables[-1]["head"].append(text)
                    else:
                        dom.tables[-1]["rows"][-1].append(text)
                    self.cell = None

        Parser().feed(text)


def test_published_page_renders_in_a_browser(chromium, tmp_path):
    """leaderboard/index.html in headless chromium: every table of the README is there with its rows,
    every figure loads (the page marks a figure it could not load), and a screenshot is not blank."""
    page = PUBLISHED / "index.html"
    if not page.is_file():
        pytest.skip("no published page in this checkout")
    dom = _Dom(_browser(chromium, tmp_path, "--dump-dom", page.as_uri()))
    readme = (PUBLISHED / "README.md").read_text(encoding="utf-8")
    md_headers = [line for line in readme.splitlines() if line.startswith("| ") and "---" not in line]
    md_tables = [line for i, line in enumerate(readme.splitlines())
                 if line.startswith("|") and i + 1 < len(readme.splitlines())
                 and readme.splitlines()[i + 1].startswith("|-")]
    assert len(dom.tables) == len(md_tables) >= 7  # six task tables, the ranking, its tests (and references)
    first = next(t for t in dom.tables if t["head"][0] == "optimizer")  # the first task's table
    assert first["head"][0] == "optimizer" and any(h.startswith("best ") for h in first["head"])
    assert all(len(row) == len(first["head"]) for row in first["rows"])
    md_rows = sum(1 for line in md_headers) - len(md_tables)
    assert sum(len(t["rows"]) for t in dom.tables) == md_rows  # every table row of the README is in the page
    images = [line.split("](")[1].rstrip(")") for line in readme.splitlines() if line.startswith("![")]
    assert [img["src"] for img in dom.images] == images
    assert dom.missing == 0 and all(int(img.get("data-natural-width", 0)) > 300 for img in dom.images)

    shot = tmp_path / "page.png"
    _browser(chromium, tmp_path, "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    from matplotlib import image

    pixels = image.imread(str(shot))
    assert pixels.shape[:2] == (2400, 1280)
    ink = (pixels[..., :3].mean(axis=2) < 0.85).mean()  # share of pixels darker than the page background
    assert 0.02 < ink < 0.6, f"the screenshot looks blank or broken ({ink:.3f} of it is ink)"


def test_page_tables_sort_by_a_clicked_column(chromium, tmp_path):
    """Clicking a header sorts its table by that column's numbers (the page's inline script); a
    second click reverses the order."""
    page = PUBLISHED / "index.html"
    if not page.is_file():
        pytest.skip("no published page in this checkout")
    text = page.read_text(encoding="utf-8")

    def sorted_by(header: str, clicks: int) -> list[list[str]]:
        click = ("<script>var t = Array.prototype.find.call(document.querySelectorAll('table.sortable'), "
                 "x => x.tHead.rows[0].cells[0].textContent.trim() === 'optimizer');"
                 "var h = Array.prototype.find.call(t.tHead.rows[0].cells, c => c.textContent.trim() === "
                 f"'{header}');" + "h.click();" * clicks + "</script>")
        copy = tmp_path / f"sorted-{clicks}.html"
        copy.write_text(text.replace("</body>", click + "</body>"), encoding="utf-8")
        return next(t for t in _Dom(_browser(chromium, tmp_path, "--dump-dom", copy.as_uri())).tables
                    if t["head"][0] == "optimizer")

    original = next(t for t in _Dom(text).tables if t["head"][0] == "optimizer")
    col = original["head"].index("waste")
    waste = lambda rows: [float(r[col].rstrip("%")) for r in rows]  # noqa: E731
    up, down = sorted_by("waste", 1)["rows"], sorted_by("waste", 2)["rows"]
    assert waste(up) == sorted(waste(original["rows"])) and waste(down) == sorted(waste(original["rows"]), reverse=True)
    assert sorted(map(tuple, up)) == sorted(map(tuple, original["rows"]))  # the same rows, reordered
    assert waste(original["rows"]) != waste(up)  # the published order (by best objective) is not by waste


def test_page_summary_comes_first_filters_hide_rows_and_tables_fit_at_1400_px(chromium, tmp_path):
    """What a reader sees first is the overall ranking and one line per table; the optimizer filter
    hides the other rows of every table, the task filter every other task's section; at a 1400 px
    window no table needs sideways scrolling; headers take the keyboard focus (Enter sorts)."""
    page = PUBLISHED / "index.html"
    if not page.is_file():
        pytest.skip("no published page in this checkout")
    text = page.read_text(encoding="utf-8")
    main = text.split("<main>", 1)[1]
    assert main.index('<h2 id="summary">') < main.index('<section data-task=')
    assert 'tabindex="0"' in main and '<select id="task-filter">' in main
    probe = """<script>
      window.addEventListener("load", function () {
        var out = {};
        out.overflowing = Array.prototype.filter.call(document.querySelectorAll(".table-wrap"), function (w) {
          return w.scrollWidth > w.clientWidth + 1; }).length;
        var f = document.getElementById("optimizer-filter"); f.value = "cbo"; f.dispatchEvent(new Event("input"));
        var shown = [], hidden = 0;
        document.querySelectorAll("table.sortable").forEach(function (t) {
          var col = Array.prototype.map.call(t.tHead.rows[0].cells, c => c.textContent.trim()).indexOf("optimizer");
          if (col < 0) return;
          Array.prototype.forEach.call(t.tBodies[0].rows, function (r) {
            if (r.hidden) hidden++; else shown.push(r.cells[col].textContent.trim()); });
        });
        out.shown = Array.from(new Set(shown)).sort(); out.hidden = hidden;
        var s = document.getElementById("task-filter"); s.value = s.options[1].value; s.dispatchEvent(new Event("change"));
        out.sections = Array.prototype.filter.call(document.querySelectorAll("section[data-task]"),
          x => !x.hidden).map(x => x.getAttribute("data-task"));
        out.first = s.options[1].value;
        document.body.setAttribute("data-probe", JSON.stringify(out));
      });
    </script>"""
    copy = PUBLISHED / f".probe-{os.getpid()}.html"  # beside the page, so its figures resolve
    try:
        copy.write_text(text.replace("</body>", probe + "</body>"), encoding="utf-8")
        dom = _browser(chromium, tmp_path, "--window-size=1400,1000", "--virtual-time-budget=5000", "--dump-dom",
                       copy.as_uri())
    finally:
        copy.unlink(missing_ok=True)
    found = json.loads(html_lib.unescape(re.search(r'data-probe="([^"]*)"', dom).group(1)))
    assert found["overflowing"] == 0, f"{found['overflowing']} tables need sideways scrolling at 1400 px"
    assert found["shown"] and all("cbo" in name for name in found["shown"]) and found["hidden"] > 0
    assert found["sections"] == [found["first"]]


def test_html_format_is_a_standalone_page(cli, small_runs, tmp_path):
    code, out, err = cli("leaderboard", *small_runs, "--format", "html", "--plots", str(tmp_path / "plots"))
    assert code == 0, err
    assert out.startswith("<!DOCTYPE html>\n<html lang=\"en\">") and '<meta charset="utf-8">' in out
    assert "<style>" in out and "<script>" in out and "http" not in out.split("<main>")[0]  # nothing fetched
    # the summary's task list, the two tables (one optimizer: no overall ranking), the Optimizers table
    assert out.count('<table class="sortable">') == 4 and "Provenance" in out
    assert '<tr id="optimizer-random">' in out and '<a href="#optimizer-random">random</a>' in out
    for src in [part.split('"')[0] for part in out.split('<img src="')[1:]]:
        assert (Path(src) if Path(src).is_absolute() else Path.cwd() / src).is_file()


# -- reproducing published cases ------------------------------------------------------------------------
def test_reproduce_reports_identical_then_the_first_diverging_trial(cli, small_runs, tmp_path):
    import gzip
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(small_runs[0], runs)
    code, out, err = cli("leaderboard", str(runs), "--reproduce", "2")
    assert code == 0, out + err
    assert "2 identical, 0 diverged or not rerun, of 2 cases" in out

    path = next(runs.rglob("seed_1.jsonl"))
    lines = path.read_text(encoding="utf-8").splitlines()
    trial = json.loads(lines[3])  # the header is line 0: this is trial 2
    trial["config"]["x1"] = trial["config"]["x1"] + 1e-12  # one ulp-sized change, as another CPU might make
    lines[3] = json.dumps(trial)
    with gzip.open(path.with_name("seed_1.jsonl.gz"), "wt", encoding="utf-8") as fh:  # compressed, like published
        fh.write("\n".join(lines) + "\n")
    path.unlink()
    code, out, err = cli("leaderboard", str(runs), "--reproduce", "3")
    assert code == 1, out + err
    assert "crashy_branin[analytic]::random[seed=1]: diverged at trial 2 (config.x1: recorded" in out
    assert "2 identical, 1 diverged or not rerun, of 3 cases" in out


def test_reproduce_chooses_cases_across_tasks_and_optimizers():
    from deploybench.scoring.reproduce import CaseRecord, choose_cases

    records = [CaseRecord(Path(f"{t}/{o}/{s}"), {"task_label": t, "optimizer": o, "seed": s}, [])
               for t in ("a", "b", "c") for o in ("x", "y", "z", "w") for s in range(5)]
    chosen = choose_cases(records, 6)
    assert len({(r.task_label, r.optimizer) for r in chosen}) == 6
    assert {r.task_label for r in chosen} == {"a", "b", "c"} and {r.optimizer for r in chosen} == {"x", "y", "z", "w"}
    assert len({r.seed for r in chosen}) > 1
    assert choose_cases(records, 6) == chosen  # deterministic
    assert len(choose_cases(records, 100)) == len(records)


def test_reproduce_usage_errors(cli, tmp_path):
    code, _, err = cli("leaderboard", str(tmp_path), "--reproduce", "0")
    assert code == 2 and "positive number of cases" in err
    code, _, err = cli("leaderboard", str(tmp_path), "--reproduce", "1")
    assert code == 2 and "no case files" in err


def test_summary_format_is_small_data_that_agrees_with_the_tables(cli, small_runs):
    code, out, err = cli("leaderboard", *small_runs, "--format", "summary")
    assert code == 0, err
    summary = json.loads(out)
    code, full, err = cli("leaderboard", *small_runs, "--format", "json")
    full = json.loads(full)
    assert summary["schema"] == 1 and summary["cases"] == full["cases"]
    assert [t["budget"] for t in summary["tables"]] == [g["budget"] for g in full["groups"]]
    for table, group in zip(summary["tables"], full["groups"]):
        first = group["rows"][0]
        assert table["best"]["optimizer"] == first["optimizer"]
        assert table["best"]["mean"] == pytest.approx(first["best"]["mean"], rel=1e-6)
        assert table["order"] == [r["optimizer"] for r in group["rows"]]


def test_published_summary_json_is_checked_with_the_pages():
    summary = PUBLISHED / "summary.json"
    if not summary.is_file():
        pytest.skip("no published summary in this checkout")
    data = json.loads(summary.read_text())
    readme = (PUBLISHED / "README.md").read_text(encoding="utf-8")
    assert len(data["tables"]) == sum(1 for line in readme.splitlines() if line.startswith("## ") and "(B=" in line)
    assert data["ranking"][0]["optimizer"] in readme.split("## Summary", 1)[1].split("\n|   1 | ", 1)[1][:40]
