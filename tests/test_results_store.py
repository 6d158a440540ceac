"""Results files: strict JSON lines, torn last lines, newer format versions."""

from __future__ import annotations

import json

import pytest

from deploybench.results import FORMAT_VERSION, CaseWriter, ResultsFormatError, read_case_file


def _write(tmp_path, n=3):
    path = tmp_path / "t/opt/seed_0.jsonl"
    with CaseWriter(path) as w:
        w.start({"node_id": "t[a]::opt[seed=0]"})
        for i in range(n):
            w.write({"type": "trial", "trial": i, "config": {"x": i}, "outcome": {"status": "ok", "cost_s": 1.0}})
    return path


def test_torn_last_line_is_skipped_and_reported(tmp_path):
    path = _write(tmp_path)
    with open(path, "a") as fh:
        fh.write('{"type": "trial", "trial": 3, "config": {"x"')  # killed mid-write
    case = read_case_file(path)
    assert len(case.trials) == 3 and not case.finished
    assert case.torn_line == 5 and "torn last line" in case.problems[0]


def test_corrupt_middle_line_is_reported(tmp_path):
    path = _write(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = "garbage{"
    path.write_text("\n".join(lines) + "\n")
    case = read_case_file(path)
    assert "corrupt line" in case.problems[0]
    assert [t["trial"] for t in case.trials] == [0]  # only the contiguous prefix is trusted
    assert any("gaps" in p for p in case.problems)


def test_newer_format_is_refused_clearly(tmp_path):
    path = tmp_path / "seed_0.jsonl"
    path.write_text(json.dumps({"type": "case", "format_version": FORMAT_VERSION + 1}) + "\n")
    with pytest.raises(ResultsFormatError, match="format version 2.*Upgrade deploybench"):
        read_case_file(path)


def test_not_a_case_file(tmp_path):
    path = tmp_path / "seed_0.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ResultsFormatError, match="not a deploybench case file"):
        read_case_file(path)
