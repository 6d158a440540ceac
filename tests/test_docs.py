"""Documentation that runs: every ``deploybench ...`` command of README.md and CONTRIBUTING.md, run in a
fresh folder, in the order a reader meets them.

Commands in code blocks run as written, except those that measure on this machine (``--target live``,
``doctor``, ``record``, ``tune``, ``probe``: minutes of live profiling), which run with ``--collect-only`` or ``--help``.
Commands quoted in prose run as written when they are complete; a synopsis (``[--format ...]``,
placeholders such as ``CHUNK...`` or ``T``) or a bare command name runs as ``--help`` of the command it
names, which still fails on a misspelt command.
"""

from __future__ import annotations

import gzip
import re
import shlex
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "CONTRIBUTING.md")
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
_INLINE = re.compile(r"`(deploybench [^`]+)`")
_PLACEHOLDER = re.compile(r"[\[\]|]|\.\.\.|^[A-Z]+(\.|$)")


def _fenced_commands(block: str) -> list[str]:
    out = []
    for line in block.splitlines():
        line = line.strip().removeprefix("$ ")
        line = re.sub(r"\s+#\s.*$", "", line)  # a trailing comment
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith("deploybench "):
                out.append(part)
    return out


def documented_commands() -> list[tuple[str, str, bool]]:
    """``(document, command, in a code block)`` for every deploybench command, in reading order."""
    found = []
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for block in _FENCE.findall(text):
            found += [(doc, command, True) for command in _fenced_commands(block)]
        prose = _FENCE.sub("", text)
        found += [(doc, " ".join(span.split()), False) for span in _INLINE.findall(prose)]
    return found


def _is_slow(words: list[str]) -> bool:
    return (words[1] in ("doctor", "record", "tune", "probe")
            or "live" in [b for a, b in zip(words, words[1:]) if a == "--target"]
            or "--task-param" in words)


def runnable(command: str, fenced: bool) -> list[str]:
    """The arguments the test runs for a documented command (see the module docstring)."""
    words = shlex.split(command)
    synopsis = next((i for i, w in enumerate(words) if _PLACEHOLDER.search(w)), None)
    if synopsis is not None:
        return [*words[1:synopsis], "--help"]
    if len(words) == 2 and not fenced and not words[1].startswith("-"):
        return [words[1], "--help"]  # a command named in prose
    if _is_slow(words):
        return [*words[1:], "--collect-only"] if words[1] == "run" else [words[1], "--help"]
    return words[1:]


def test_every_documented_command_is_found():
    commands = [c for _, c, _ in documented_commands()]
    assert "deploybench run --optimizer tba --task edge_tight --seeds 5" in commands  # the main command
    assert "deploybench leaderboard --check" in commands
    assert all(runnable(c, f)[0] in ("run", "list", "plugins", "leaderboard", "doctor", "record", "table", "tune",
                                                    "probe", "export", "--version")
               for _, c, f in documented_commands())


@pytest.mark.slow
def test_documented_commands_run(cli, tmp_path):
    """A fresh folder holding what the documents assume: the published leaderboard (read by
    ``leaderboard --check``) and ``my_device.jsonl``, a recorded table (here the shipped cpu one)."""
    (tmp_path / "leaderboard").symlink_to(ROOT / "leaderboard", target_is_directory=True)
    with gzip.open(ROOT / "deploybench/tasks/tables/cpu.jsonl.gz", "rb") as src, \
            open(tmp_path / "my_device.jsonl", "wb") as dst:
        shutil.copyfileobj(src, dst)
    failures = []
    for doc, command, fenced in documented_commands():
        args = runnable(command, fenced)
        proc = cli(*args, cwd=tmp_path)
        if proc.returncode != 0:
            failures.append(f"{doc}: `{command}` (ran: deploybench {' '.join(args)}) exited {proc.returncode}:\n"
                            f"{proc.stderr[-2000:]}{proc.stdout[-1000:]}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("command, fenced, expected", [
    ("deploybench table pack CHUNK... --out T.jsonl.gz --name T", False, ["table", "pack", "--help"]),
    ("deploybench leaderboard results/ [--format github|csv] [--out FILE]", False, ["leaderboard", "results/", "--help"]),
    ("deploybench run -o tba -t edge_tight --target live", True, ["run", "-o", "tba", "-t", "edge_tight", "--target",
                                                                  "live", "--collect-only"]),
    ("deploybench doctor", True, ["doctor", "--help"]),
    ("deploybench plugins", False, ["plugins", "--help"]),
    ("deploybench list", True, ["list"]),
    ("deploybench --version", False, ["--version"]),
])
def test_how_each_kind_of_command_is_run(command, fenced, expected):
    assert runnable(command, fenced) == expected
