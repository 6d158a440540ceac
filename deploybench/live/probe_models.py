"""Small models for the doctor's pre-flight probes and for tests (importable by name, so their artefacts can be pickled).

- ``tiny_cnn``: two convolutions and a classifier; runs in milliseconds on any backend;
- ``memory_hog``: every forward pass allocates and touches ``DEPLOYBENCH_TEST_HOG_MB`` megabytes, so a
  test can push a worker over an emulated device's memory limit in a fraction of a second.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

__all__ = ["TinyCNN", "MemoryHog", "build_test_model", "HOG_ENV"]

HOG_ENV = "DEPLOYBENCH_TEST_HOG_MB"


class TinyCNN(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=4, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1000),
        )


class MemoryHog(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mb = float(os.environ.get(HOG_ENV, "0") or 0)
        if mb > 0:
            block = torch.ones(int(mb * 2**20 / 4), dtype=torch.float32)  # ones(): every page is touched
            x = x + block[:1].sum() * 0
        return self.fc(x.mean(dim=(2, 3)))


def build_test_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "tiny_cnn":
        return TinyCNN()
    if name == "memory_hog":
        return MemoryHog()
    raise ValueError(f"unknown test model {name!r}; known: tiny_cnn, memory_hog")
