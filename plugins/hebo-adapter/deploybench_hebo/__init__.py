"""deploybench-hebo: HEBO as a deploybench optimizer (``--optimizer hebo``)."""

__all__ = ["HEBOOptimizer"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Import the optimizer (and HEBO, torch, pymoo) on first use, not when the entry point is loaded."""
    if name == "HEBOOptimizer":
        from .optimizer import HEBOOptimizer

        return HEBOOptimizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
