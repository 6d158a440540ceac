"""The model zoo of the deployment space: torchvision constructors and their ImageNet-1K weights.

Weights are loaded only from the local torch hub cache (``torch.hub.get_dir()/checkpoints``); nothing
is ever downloaded (seed-code §16 B10). Without the file the model is randomly initialised and the
record says so (``weights_source``). ``vit_b_16`` is ViT-B/16, the model the reference mislabelled
``vit_tiny`` (§16 B2). ``tiny_cnn`` is a test and probe model, available when ``DEPLOYBENCH_TESTING=1`` or in doctor probes.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["WEIGHTS", "TEST_MODELS", "weights_enum", "cached_weights_path", "documented_accuracy", "build_model"]

#: model -> (torchvision builder, weights enum member), as in the reference's zoo (seed-code §11.1)
WEIGHTS: dict[str, tuple[str, str]] = {
    "resnet18": ("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet50": ("resnet50", "ResNet50_Weights.IMAGENET1K_V2"),
    "mobilenet_v2": ("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V2"),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    "vit_b_16": ("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1"),
}
TEST_MODELS = ("tiny_cnn",)


def testing_enabled() -> bool:
    return os.environ.get("DEPLOYBENCH_TESTING") == "1"


def weights_enum(model: str) -> Any:
    """The torchvision weights enum member of ``model`` (metadata only; loads nothing)."""
    import torchvision.models as tvm

    enum_name, member = WEIGHTS[model][1].split(".")
    return getattr(getattr(tvm, enum_name), member)


def cached_weights_path(model: str) -> str | None:
    """Path of the weights file in the local torch hub cache, or None when it is not there."""
    if model not in WEIGHTS:
        return None
    import torch

    url = weights_enum(model).url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return path if os.path.isfile(path) else None


def documented_accuracy(model: str) -> float | None:
    """The weights' documented ImageNet-1K top-1 (a fraction), from torchvision's weights metadata.

    The test model ``tiny_cnn`` is randomly initialised: chance level, 1/1000."""
    if model in TEST_MODELS:
        return 0.001
    if model not in WEIGHTS:
        return None
    meta = weights_enum(model).meta
    try:
        return float(meta["_metrics"]["ImageNet-1K"]["acc@1"]) / 100.0
    except (KeyError, TypeError, ValueError):
        return None


def _tiny_cnn() -> Any:
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=4, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1000),
    )


def build_model(model: str, weights: str = "auto", allow_test_models: bool = False) -> tuple[Any, str]:
    """A fresh model in eval mode and where its weights came from (``pretrained`` or ``random``).

    ``weights="pretrained"`` raises :class:`FileNotFoundError` (an environment problem) when the file
    is not in the local cache.
    """
    import torch
    import torchvision.models as tvm

    if model in TEST_MODELS:
        if not (allow_test_models or testing_enabled()):
            raise ValueError(f"model {model!r} exists only for tests and probes (set DEPLOYBENCH_TESTING=1)")
        torch.manual_seed(0)
        return _tiny_cnn().eval(), "random"
    if model not in WEIGHTS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(WEIGHTS)}")
    builder = getattr(tvm, WEIGHTS[model][0])
    path = cached_weights_path(model) if weights != "random" else None
    if weights == "pretrained" and path is None:
        raise FileNotFoundError(
            f"pretrained weights for {model} are not in the local torch hub cache "
            f"({torch.hub.get_dir()}/checkpoints); nothing is downloaded: place the file there or use weights=random")
    torch.manual_seed(0)
    net = builder(weights=None)
    if path is None:
        return net.eval(), "random"
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval(), "pretrained"
