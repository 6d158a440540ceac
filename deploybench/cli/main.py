"""``deploybench`` command line: run, list, plugins (and the commands other modules add).

Exit codes: :class:`deploybench.exit_codes.ExitCode` (0 success, 1 some case errored, 2 usage
error, 3 internal error, 4 interrupted).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Any, Sequence

from ..exit_codes import ExitCode

__all__ = ["main", "build_parser"]

#: command -> the module under deploybench.cli that adds it: ``add_parser(subparsers, pm)`` and
#: ``run(args, pm) -> int``. Only the module of the command being run is imported (the leaderboard's
#: statistics import SciPy, which ``deploybench run`` does not need); ``--help`` imports them all.
COMMANDS = {"run": "run", "list": "listing", "plugins": "plugins_cmd", "leaderboard": "leaderboard",
            "doctor": "doctor", "record": "record", "table": "table", "tune": "tune", "probe": "probe",
            "export": "export"}
COMMAND_MODULES = tuple(COMMANDS.values())


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors raise instead of exiting so the message format is ours."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from ..errors import UsageError

        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""  # "deploybench run" -> "run"
        if "unrecognized arguments" in message and any(a in message.split() for a in ("-p", "--plugin")):
            message += " (-p/--plugin goes before the command: deploybench -p MODULE run ...)"
        raise UsageError(f"{command}: {message}" if command else message)


def _early_plugin_args(argv: Sequence[str]) -> list[str]:
    """``-p`` values must be known before parsing, since plugins add options."""
    out = []
    it = iter(range(len(argv)))
    for i in it:
        a = argv[i]
        if a == "-p" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("-p") and len(a) > 2 and not a.startswith("--"):
            out.append(a[2:])
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
        elif a == "--plugin" and i + 1 < len(argv):
            out.append(argv[i + 1])
    return out


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option or a ``-p`` value)."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("-p", "--plugin"):
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def build_parser(pm: Any | None, commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of ``commands`` (default: every command). With ``pm=None`` (``deploybench --help``,
    ``--version``) no plugin manager is built and plugins add no options."""
    from ..reporting import PROGRESS_LEGEND

    parser = _Parser(prog="deploybench", description="Benchmark optimizers for constrained, crash-prone ML deployment.",
                     epilog=PROGRESS_LEGEND)
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="load a plugin module; -p no:NAME blocks the plugin NAME")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"deploybench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for command in COMMANDS if commands is None else commands:
        module_name = f"{__package__}.{COMMANDS[command]}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # command not built into this version
            raise
        module.add_parser(sub, pm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # the commonest probe, answered before anything else is imported
        from .. import __version__

        print(f"deploybench {__version__}")
        return 0
    from ..plugins import create_plugin_manager
    from ..errors import UsageError
    from ..results import ResultsFormatError

    try:
        command = _command_of(argv)
        if command is None:  # --version, --help or nothing: answered without loading any plugin
            parser = build_parser(None, commands=() if argv[:1] == ["--version"] else None)
            pm = None
        else:
            pm = create_plugin_manager(_early_plugin_args(argv))
            parser = build_parser(pm, commands=[command] if command in COMMANDS else None)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return ExitCode.USAGE_ERROR
        args.argv = ["deploybench", *argv]
        return int(args.handler(args, pm) or 0)
    except (UsageError, ResultsFormatError) as exc:
        print(f"deploybench: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    except KeyboardInterrupt:
        print("deploybench: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # pragma: no cover - output piped into head
        return 0
    except Exception:  # noqa: BLE001
        print("deploybench: internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return ExitCode.INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
