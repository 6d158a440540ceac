"""Argument types and option groups shared by several commands."""

from __future__ import annotations

import argparse
from typing import Any, Callable

__all__ = ["csv_list", "add_device_options"]


def csv_list(kind: type = str) -> Callable[[str], list]:
    """argparse type: a comma-separated list of ``kind`` (``"1,4,16"`` -> ``[1, 4, 16]``)."""
    def parse(text: str) -> list:
        try:
            return [kind(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None

    return parse


def add_device_options(p: Any) -> None:
    """Options of ``tune`` and ``probe``: the emulated device and the shared measurement lock."""
    p.add_argument("--device-profile", default="host", metavar="NAME",
                   help="the device to emulate: host (this machine), cpu (2 threads, 4 GiB), edge (2 threads, 1 GiB)")
    p.add_argument("--device-memory-mb", type=float, default=None, metavar="MB",
                   help="override the profile's memory: workers beyond it are killed (an oom crash)")
    p.add_argument("--device-threads", type=int, default=None, metavar="N", help="override the profile's threads")
    p.add_argument("--lock", default=None, metavar="FILE",
                   help="hold an flock on FILE per measurement (share it with a table recorder)")
