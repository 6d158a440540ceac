"""SMAC's acquisition maximiser made reproducible across processes.

``LocalSearch._get_initial_points`` (SMAC 2.x) deduplicates its start points through a ``set`` of
``Configuration`` objects and returns ``list(set)``: the order of the local searches, which share one
random generator, then depends on string hashing, i.e. on ``PYTHONHASHSEED``. The same seed gave
different suggestions in different processes (so ``-n N`` and ``--resume`` did not reproduce a
serial run). Here the start points are put in a canonical order (by their ConfigSpace vector);
the search itself is SMAC's.
"""

from __future__ import annotations

import numpy as np
from ConfigSpace import Configuration, ConfigurationSpace
from smac.acquisition.maximizer import LocalAndSortedRandomSearch, LocalSearch

__all__ = ["OrderedLocalAndSortedRandomSearch"]


def _canonical(config: Configuration) -> tuple:
    return tuple(np.nan_to_num(np.asarray(config.get_array(), dtype=float), nan=-1.0).tolist())


class _OrderedLocalSearch(LocalSearch):
    def _get_initial_points(self, *args, **kwargs) -> list[Configuration]:
        return sorted(super()._get_initial_points(*args, **kwargs), key=_canonical)


class OrderedLocalAndSortedRandomSearch(LocalAndSortedRandomSearch):
    """``LocalAndSortedRandomSearch`` (the HPO facade's maximiser) with ordered local-search starts."""

    def __init__(self, configspace: ConfigurationSpace, *, challengers: int, local_search_iterations: int,
                 seed: int) -> None:
        super().__init__(configspace, challengers=challengers, local_search_iterations=local_search_iterations,
                         seed=seed)
        # the parent's own LocalSearch, built with the same (default) arguments, in its ordered form
        self._local_search = _OrderedLocalSearch(configspace=configspace, seed=seed)
