"""Case files are untrusted input: whatever a damaged, hand-edited or hostile case file holds,
``deploybench run --resume`` and ``deploybench leaderboard`` answer with a result or a clear usage
error, never with the internal-error exit code and a traceback.

Hypothesis mutates a valid results folder (bytes cut, overwritten or inserted; a line replaced by an
arbitrary JSON value; a field of a record set to an arbitrary JSON value) and runs the real CLI entry
point, ``deploybench.cli.main.main``, on it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploybench import ExitCode
from deploybench.cli.main import main

RUN = ("run", "-t", "crashy_branin", "-o", "random", "--seeds", "2", "--budget", "5")
CASE = Path("crashy_branin/random/seed_0.jsonl")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["type", "format_version", "trial", "config", "outcome", "status", "cost_s", "objective", "error",
          "seed", "budget", "budget_seconds", "task_signature", "optimizer_params", "objective", "n_trials",
          "task_label", "optimizer", "known_optimum", "metrics", "early_stopped", "duplicate"]


def _quiet_main(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    return int(code), err.getvalue()


@pytest.fixture(scope="module")
def valid_results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("valid") / "r"
    code, err = _quiet_main([*RUN, "--out", str(out)])
    assert code == ExitCode.OK, err
    return out


def _set_field(record: object, key: str, value: object) -> object:
    """Set ``key`` wherever it occurs at the top level or inside ``outcome``."""
    if isinstance(record, dict):
        target = record["outcome"] if key in ("status", "cost_s", "objective", "error", "metrics",
                                              "early_stopped") and isinstance(record.get("outcome"), dict) else record
        target[key] = value
    return record


@st.composite
def mutations(draw) -> tuple[str, tuple]:
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "replace_line", "set_field", "drop_line"]))
    if kind in ("truncate",):
        return kind, (draw(st.floats(0, 1)),)
    if kind in ("overwrite", "insert"):
        return kind, (draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=40)))
    if kind == "replace_line":
        return kind, (draw(st.integers(0, 7)), draw(json_values))
    if kind == "drop_line":
        return kind, (draw(st.integers(0, 7)),)
    return kind, (draw(st.integers(0, 7)), draw(st.sampled_from(FIELDS)), draw(json_values))


def _mutate(data: bytes, kind: str, args: tuple) -> bytes:
    if kind == "truncate":
        return data[: int(args[0] * len(data))]
    if kind == "overwrite":
        at = int(args[0] * len(data))
        return data[:at] + args[1] + data[at + len(args[1]):]
    if kind == "insert":
        at = int(args[0] * len(data))
        return data[:at] + args[1] + data[at:]
    lines = data.split(b"\n")
    i = args[0] % max(1, len(lines) - 1)
    if kind == "replace_line":
        lines[i] = json.dumps(args[1]).encode()
    elif kind == "drop_line":
        del lines[i]
    else:
        try:
            record = json.loads(lines[i])
        except ValueError:
            return data
        lines[i] = json.dumps(_set_field(record, args[1], args[2])).encode()
    return b"\n".join(lines)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=mutations())
def test_no_mutated_case_file_makes_an_internal_error(valid_results, mutation):
    kind, args = mutation
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r"
        shutil.copytree(valid_results, out)
        path = out / CASE
        path.write_bytes(_mutate(path.read_bytes(), kind, args))

        code, err = _quiet_main([*RUN, "--out", str(out), "--resume"])
        assert code in (ExitCode.OK, ExitCode.USAGE_ERROR), err
        assert "Traceback" not in err
        if code == ExitCode.USAGE_ERROR:
            assert str(path) in err and err.count("\n") == 1  # names the file, one line
        else:
            assert (out / CASE).exists()

        code, err = _quiet_main(["leaderboard", str(out)])
        assert code != ExitCode.INTERNAL_ERROR, err
        assert "Traceback" not in err


def test_a_directory_named_like_a_case_file_is_a_usage_error(valid_results, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(valid_results, out)
    (out / CASE).unlink()
    (out / CASE).mkdir()
    code, err = _quiet_main([*RUN, "--out", str(out), "--resume"])
    assert code == ExitCode.USAGE_ERROR and "cannot read" in err and "Is a directory" in err, err
    code, err = _quiet_main(["leaderboard", str(out)])  # the leaderboard reads files only: the others are scored
    assert code != ExitCode.INTERNAL_ERROR and "Traceback" not in err, err


def test_an_over_long_line_is_skipped_without_reading_it_whole(valid_results, tmp_path, monkeypatch):
    import deploybench.results as results

    monkeypatch.setattr(results, "MAX_LINE_BYTES", 4096)
    out = tmp_path / "r"
    shutil.copytree(valid_results, out)
    lines = (out / CASE).read_text().splitlines(keepends=True)
    lines.insert(3, '{"type": "trial", "pad": "' + "x" * 20000 + '"}\n')
    (out / CASE).write_text("".join(lines))
    case = results.read_case_file(out / CASE)
    assert any("longer than 4096 bytes" in p for p in case.problems)
    assert [t["trial"] for t in case.trials] == [0, 1, 2, 3, 4]  # the lines around it are intact
