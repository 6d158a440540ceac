"""Keep Ax quiet and single-threaded while it runs, and leave the process as it was afterwards.

Ax logs every generated and completed trial at INFO level through its own stream handler (and one line
when it is imported), and Ax, BoTorch, GPyTorch and linear_operator warn about routine numerics; a
deploybench run prints its own progress. Torch's intra-op threads default to every core: on a shared
machine, or with ``-n N`` cases in parallel, the GP fits and acquisition optimisation would fight the
other processes for them (and gain little on matrices of a few dozen points), so Ax runs with
``torch_threads`` threads (1 by default). Both settings are process-wide, so they are set for the
duration of each call into Ax and restored after it.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Iterator

__all__ = ["quiet_import", "quiet_ax"]


@contextmanager
def quiet_import() -> Iterator[None]:
    """Import Ax without its INFO line ("Ax SQL storage initialized ...") and import-time warnings."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


@contextmanager
def quiet_ax(threads: int) -> Iterator[None]:
    """Run Ax with its stream handler at ERROR, warnings ignored and ``threads`` torch threads."""
    import torch
    from ax.utils.common.logger import ROOT_STREAM_HANDLER

    level, previous_threads = ROOT_STREAM_HANDLER.level, torch.get_num_threads()
    ROOT_STREAM_HANDLER.setLevel(logging.ERROR)
    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(previous_threads)
        ROOT_STREAM_HANDLER.setLevel(level)
