"""Published records as one archive per table: written reproducibly, merged per optimizer, and read
by every reader (leaderboard, --check, --reproduce, export) exactly like the case files they hold."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from deploybench.archive import DROPPED_FIELDS, pack_runs
from deploybench.cli.main import main
from deploybench.results import (ArchivedCase, ResultsFormatError, archive_of, case_location, iter_case_files,
                                 read_case_file)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """random and tba on crashy_branin (3 seeds, 6 trials), as ``run`` writes them."""
    out = tmp_path_factory.mktemp("archive") / "runs"
    assert main(["run", "-o", "random", "-o", "tba", "-t", "crashy_branin", "--seeds", "3", "--budget", "6",
                 "--out", str(out), "-q"]) == 0
    return out


def _leaderboard_json(capsys, *roots) -> dict:
    capsys.readouterr()
    assert main(["leaderboard", *map(str, roots), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["groups"]
    for group in data["groups"]:
        # packing stamps the optimizer's libraries into the headers (the only difference by design)
        group.pop("software")
    return data


def test_an_archive_holds_the_compacted_case_files_in_run_layout(runs, tmp_path):
    counts = pack_runs([runs], tmp_path / "published")
    archive = tmp_path / "published" / "crashy_branin.tar.xz"
    assert counts == {"crashy_branin.tar.xz": 6} and archive.is_file()
    cases = list(iter_case_files(archive))
    assert [c.member for c in cases] == [f"{o}/seed_{s}.jsonl" for o in ("random", "tba") for s in range(3)]
    for case in cases:
        original = read_case_file(runs / "crashy_branin" / case.member)
        packed = read_case_file(case)
        assert packed.end is not None and packed.end["status"] == "completed"
        assert len(packed.trials) == len(original.trials) == 6
        for before, after in zip(original.trials, packed.trials):
            assert after == {k: v for k, v in before.items() if k not in DROPPED_FIELDS["trial"]}
        assert "started_at" in original.header and "started_at" not in packed.header
        assert packed.header["optimizer_version"].startswith("deploybench ")
    # extracting it gives back the layout `run` writes
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    assert sorted(p.relative_to(tmp_path / "extracted").as_posix()
                  for p in (tmp_path / "extracted").rglob("*.jsonl")) == [c.member for c in cases]


def test_a_path_through_an_archive_is_read_as_that_case(runs, tmp_path):
    pack_runs([runs], tmp_path)
    archive = tmp_path / "crashy_branin.tar.xz"
    text = f"{archive}/tba/seed_2.jsonl"
    location = case_location(text)
    assert location == ArchivedCase(archive, "tba/seed_2.jsonl") and str(location) == archive.as_posix() + "/tba/seed_2.jsonl"
    assert archive_of(text) == archive and archive_of(runs / "crashy_branin" / "tba" / "seed_2.jsonl") is None
    assert read_case_file(text).header["seed"] == 2
    with pytest.raises(ResultsFormatError, match="holds no case tba/seed_9.jsonl"):
        read_case_file(f"{archive}/tba/seed_9.jsonl")


def test_packing_is_reproducible_and_replaces_only_the_optimizers_it_is_given(runs, tmp_path):
    first = pack_runs([runs], tmp_path / "a")
    pack_runs([runs], tmp_path / "b")
    a, b = (tmp_path / d / "crashy_branin.tar.xz" for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()  # no time stamps, owners or orderings that vary
    # a rerun of tba alone (2 seeds now) replaces tba's members and keeps random's
    rerun = tmp_path / "rerun"
    assert main(["run", "-o", "tba", "-t", "crashy_branin", "--seeds", "2", "--budget", "6",
                 "--out", str(rerun), "-q"]) == 0
    second = pack_runs([rerun], tmp_path / "a")
    assert first == {"crashy_branin.tar.xz": 6} and second == {"crashy_branin.tar.xz": 5}
    assert [c.member for c in iter_case_files(a)] == (
        [f"random/seed_{s}.jsonl" for s in range(3)] + [f"tba/seed_{s}.jsonl" for s in range(2)])


def test_the_leaderboard_scores_an_archive_as_it_scores_the_folder(runs, tmp_path, capsys):
    pack_runs([runs], tmp_path)
    archive = tmp_path / "crashy_branin.tar.xz"
    from_folder = _leaderboard_json(capsys, runs)
    assert _leaderboard_json(capsys, archive) == from_folder
    assert _leaderboard_json(capsys, tmp_path) == from_folder  # a folder of archives
    capsys.readouterr()
    assert main(["leaderboard", str(archive), "--reproduce", "2"]) == 0
    assert "2 identical, 0 diverged or not rerun, of 2 cases" in capsys.readouterr().out


def test_a_damaged_archive_is_named_with_what_is_wrong(tmp_path, capsys):
    bad = tmp_path / "edge_tight@edge.tar.xz"
    bad.write_bytes(b"not an xz stream")
    with pytest.raises(ResultsFormatError, match="cannot read the records archive .*edge_tight@edge.tar.xz"):
        list(iter_case_files(tmp_path))
    assert main(["leaderboard", str(tmp_path)]) != 0
    assert "edge_tight@edge.tar.xz" in capsys.readouterr().err
