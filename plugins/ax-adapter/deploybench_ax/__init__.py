"""deploybench-ax: Ax (BoTorch) as a deploybench optimizer (``--optimizer ax``)."""

__all__ = ["AxOptimizer"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the optimizer (and Ax, torch, BoTorch: about ten seconds) on first use, not when the
    entry point is loaded."""
    if name == "AxOptimizer":
        from .optimizer import AxOptimizer

        return AxOptimizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
