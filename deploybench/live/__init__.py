"""The live profiler: measure a deployment configuration on this machine, one fresh process per trial.

Public API: :func:`profile` with a :class:`ProfileRequest` returns a :class:`Measurement`;
:func:`classify_error` names failure kinds; :func:`deploybench.live.doctor.doctor_report` probes
which backend × precision paths work here.
"""

from .errors import classify_error
from .profiler import Measurement, ProfileRequest, profile

__all__ = ["ProfileRequest", "Measurement", "profile", "classify_error"]
