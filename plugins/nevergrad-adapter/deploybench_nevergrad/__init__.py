"""deploybench-nevergrad: nevergrad as a deploybench optimizer (``--optimizer nevergrad``)."""

__all__ = ["NevergradOptimizer"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the optimizer (and its library) on first use, not when the entry point is loaded."""
    if name == "NevergradOptimizer":
        from .optimizer import NevergradOptimizer

        return NevergradOptimizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
