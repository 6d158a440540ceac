"""Shared fixtures: run the ``deploybench`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def cli_env(extra_paths: list[Path] | None = None, **env: str) -> dict[str, str]:
    out = dict(os.environ)
    paths = [str(p) for p in (extra_paths or [])] + [str(FIXTURES)]
    if out.get("PYTHONPATH"):
        paths.append(out["PYTHONPATH"])
    out["PYTHONPATH"] = os.pathsep.join(paths)
    out["HF_HUB_OFFLINE"] = "1"
    out.update(env)
    return out


@pytest.fixture
def run_cli():
    """``run_cli(*args, env=None, timeout=...)`` → CompletedProcess of ``python -m deploybench.cli.main``."""

    def _run(*args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None):
        return subprocess.run([sys.executable, "-m", "deploybench.cli.main", *args], capture_output=True, text=True,
                              env=env or cli_env(), timeout=timeout, cwd=cwd)

    return _run
