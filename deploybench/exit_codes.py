"""Exit codes of the ``deploybench`` command, in the style of pytest's ``ExitCode``.

Scripts can tell an interrupted run (resumable with ``--resume``) from a usage error (nothing ran)::

    rc=0; deploybench run ... || rc=$?
    [ "$rc" -eq "$(python -c 'from deploybench import ExitCode; print(ExitCode.INTERRUPTED.value)')" ] && ...
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """What a ``deploybench`` invocation ended with."""

    #: every case ran (an optimizer's or a task's fault inside a case is that case's error, see 1)
    OK = 0
    #: the session ran, and some case ended as an error (its traceback is in its case file)
    CASE_ERRORS = 1
    #: bad input (an unknown name, a bad option value, an unreadable file or folder): nothing ran
    USAGE_ERROR = 2
    #: a bug in deploybench or a plugin outside any case (please report it)
    INTERNAL_ERROR = 3
    #: stopped early (Ctrl-C, SIGTERM, SIGHUP, a results disk that failed): finished cases are kept,
    #: and ``--resume`` continues the rest
    INTERRUPTED = 4
    #: ``tune`` ran, but nothing can be recommended (no configuration met the caps, or none held its
    #: feasibility over the re-measurements); every measurement is kept
    NO_RECOMMENDATION = 5
