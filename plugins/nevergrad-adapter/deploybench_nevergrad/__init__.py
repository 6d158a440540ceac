"""deploybench-nevergrad: nevergrad as a deploybench optimizer (``--optimizer nevergrad``)."""

from .optimizer import NevergradOptimizer

__all__ = ["NevergradOptimizer"]
__version__ = "0.1.0"
