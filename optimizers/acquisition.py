"""Acquisition arithmetic shared by the GP-based optimizers.

- :func:`log_expected_improvement`: log EI computed without underflow, so that far from the
  incumbent (where EI is below 1e-300 in floating point) candidates are still ranked by how
  unlikely an improvement is, instead of all tying at a floor (Ament et al., "Unexpected
  Improvements to Expected Improvement for Bayesian Optimization", NeurIPS 2023).
- :func:`rounded`: scores rounded to 9 significant digits before an argmax, so two machines whose
  BLAS builds differ in the last bits of a kernel matrix still choose the same candidate.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx, log_ndtr

__all__ = ["log_expected_improvement", "rounded"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(φ(z) + z·Φ(z)), the log of EI for unit standard deviation."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    mid = z > -5.0
    zm = z[mid]
    out[mid] = np.log(np.exp(-0.5 * zm * zm - _LOG_SQRT_2PI) + zm * np.exp(log_ndtr(zm)))
    zl = z[~mid]
    # φ(z)·(1 + z·Φ(z)/φ(z)) with Φ(z)/φ(z) = sqrt(π/2)·erfcx(−z/√2), stable for very negative z
    ratio = 1.0 + zl * math.sqrt(math.pi / 2) * erfcx(-zl / math.sqrt(2))
    tail = np.where(ratio > 0, ratio, 1.0 / np.maximum(zl * zl, 1.0))
    out[~mid] = -0.5 * zl * zl - _LOG_SQRT_2PI + np.log(np.maximum(tail, 1e-300))
    return out


def log_expected_improvement(improvement: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """log E[max(f − best, 0)] for f ~ N(best + improvement, sd²) (improvement = μ − best − ξ)."""
    sd = np.maximum(np.asarray(sd, dtype=float), 1e-12)
    return _log_h(np.asarray(improvement, dtype=float) / sd) + np.log(sd)


def rounded(scores: np.ndarray, digits: int = 9) -> np.ndarray:
    """Scores rounded to ``digits`` significant digits (infinities and NaN mapped to −inf)."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    finite = np.isfinite(s)
    out = np.full_like(s, -np.inf, dtype=float)
    mag = np.where(finite & (s != 0), np.floor(np.log10(np.abs(np.where(finite & (s != 0), s, 1.0)))), 0.0)
    factor = 10.0 ** (digits - 1 - mag)
    out[finite] = np.round(s[finite] * factor[finite]) / factor[finite]
    return out
