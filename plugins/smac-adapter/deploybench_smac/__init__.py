"""deploybench-smac: SMAC3 as a deploybench optimizer (``--optimizer smac``)."""

from .optimizer import SMACOptimizer

__all__ = ["SMACOptimizer"]
__version__ = "0.1.0"
