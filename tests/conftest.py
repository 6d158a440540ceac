"""Shared fixtures: the ``deploybench`` CLI in-process (``cli``, fast) or in a subprocess as a user
would run it (``run_cli``: for signals, native crashes and fresh interpreters)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
pytest_plugins = ["pytester"]  # plugin authors' test files are run in-process by some tests


#: fixtures whose tests are slow by nature: a fresh interpreter per call, a real browser, a Ray instance
SLOW_FIXTURES = frozenset({"run_cli", "chromium", "ray_cluster", "ray_local"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark as ``slow`` what the fast loop (``pytest -m "not slow"``) leaves out: live inference
    (``live``), subprocess CLI runs, the browser and Ray, besides the tests marked ``slow`` by hand."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            continue
        if item.get_closest_marker("live") is not None or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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


@contextlib.contextmanager
def _environment(env: dict[str, str], cwd: Path | None):
    """This process as a subprocess with ``env`` and ``cwd`` would see it: the environment replaced,
    ``PYTHONPATH`` entries first on ``sys.path``; everything restored afterwards, and modules imported
    from those entries forgotten (another test may put a different module of the same name there)."""
    saved_env, saved_path, saved_cwd = dict(os.environ), list(sys.path), os.getcwd()
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = extra
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        os.environ.clear()
        os.environ.update(saved_env)
        roots = tuple(os.path.abspath(p) + os.sep for p in extra)
        for name, module in list(sys.modules.items()):
            if roots and str(getattr(module, "__file__", None) or "").startswith(roots):
                del sys.modules[name]


@pytest.fixture
def cli():
    """``cli(*args, env=None, cwd=None)`` → CompletedProcess of ``deploybench.cli.main.main(args)`` run in
    this process (no interpreter start-up, no import of the libraries again): for every test where a
    separate process is not the point."""
    from deploybench.cli.main import main

    def _run(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float | None = None):
        out, err = io.StringIO(), io.StringIO()
        with _environment(env or cli_env(), cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's --help
                code = exc.code if isinstance(exc.code, int) else 0
        return subprocess.CompletedProcess(["deploybench", *args], code, out.getvalue(), err.getvalue())

    return _run


@pytest.fixture
def quiet_live(monkeypatch):
    """Live tests: the contention guard off (a test machine is never quiet)."""
    monkeypatch.setenv("DEPLOYBENCH_MAX_OTHER_CORES", str((os.cpu_count() or 1) + 1))
