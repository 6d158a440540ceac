"""``deploybench tune``: tune the deployment of your own model under your own caps (see :func:`tune`)."""

from .pipeline import TuneResult, tune
from .tune_task import DEFAULT_TUNE_OPTIMIZER, OBJECTIVES, TuneInputError, TuneSpec, TuneTask

__all__ = ["tune", "TuneSpec", "TuneResult", "TuneTask", "TuneInputError", "DEFAULT_TUNE_OPTIMIZER", "OBJECTIVES"]
