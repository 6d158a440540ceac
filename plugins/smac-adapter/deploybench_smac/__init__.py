"""deploybench-smac: SMAC3 as a deploybench optimizer (``--optimizer smac``)."""

__all__ = ["SMACOptimizer"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the optimizer (and its library) on first use, not when the entry point is loaded."""
    if name == "SMACOptimizer":
        from .optimizer import SMACOptimizer

        return SMACOptimizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
