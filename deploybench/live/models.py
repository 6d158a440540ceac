"""The model zoo of the deployment space: torchvision constructors, their ImageNet-1K weights, and the
accuracy each precision is documented to reach.

Weights are loaded only from the local torch hub cache (``torch.hub.get_dir()/checkpoints``); nothing
is ever downloaded. Without the file the model is randomly initialised and the record says so
(``weights_source``): latency and memory do not depend on weight values, accuracy then comes from the
documentation. ``vit_b_16`` is ViT-B/16 (86M parameters), named for what it is.

Accuracy per precision (:func:`accuracy_for`), ``accuracy_source`` says which rule applied:

- ``measured``: top-1 measured on a labelled ImageNet folder with pretrained weights;
- ``documented_fp32``: fp32 on any backend: torchvision's documented ImageNet-1K top-1 of the weights
  (an exported or compiled fp32 model computes the same function up to float rounding);
- ``assumed_fp16_equals_fp32``: fp16 is given the fp32 figure. This is an assumption, stated here and
  in the README: for these ImageNet classifiers fp16 inference changes top-1 by well under 0.1 points;
- ``documented_int8``: static int8 of torchvision's quantizable architectures in PyTorch: the top-1
  torchvision documents for its quantised weights (same architecture, same quantisation scheme);
- ``unknown``: no documented figure exists (ONNX Runtime int8 with our own calibration, PyTorch dynamic
  int8): the accuracy is not invented; accuracy-maximising scenarios treat the configuration as not
  acceptable (``accuracy_unknown`` is a constraint there).

``tiny_cnn`` and ``memory_hog`` are test and probe models, available when ``DEPLOYBENCH_TESTING=1`` or in
doctor probes (``memory_hog`` allocates ``DEPLOYBENCH_TEST_HOG_MB`` megabytes on every forward pass).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["WEIGHTS", "QUANTIZABLE", "TEST_MODELS", "weights_enum", "cached_weights_path", "documented_accuracy",
           "accuracy_for", "build_model", "build_quantizable", "ACCURACY_SOURCES"]

#: model -> (torchvision builder, weights enum member): torchvision's best published ImageNet-1K weights
WEIGHTS: dict[str, tuple[str, str]] = {
    "resnet18": ("resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet50": ("resnet50", "ResNet50_Weights.IMAGENET1K_V2"),
    "mobilenet_v2": ("mobilenet_v2", "MobileNet_V2_Weights.IMAGENET1K_V2"),
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
    "mobilenet_v3_large": ("mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V2"),
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1"),
    "googlenet": ("googlenet", "GoogLeNet_Weights.IMAGENET1K_V1"),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1"),
    "regnet_y_400mf": ("regnet_y_400mf", "RegNet_Y_400MF_Weights.IMAGENET1K_V2"),
    "vit_b_16": ("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1"),
}
#: model -> (quantized weights enum member, engine those weights were quantised for): torchvision's
#: quantizable architectures and the scheme its documented int8 accuracy belongs to
QUANTIZABLE: dict[str, tuple[str, str]] = {
    "resnet18": ("ResNet18_QuantizedWeights.IMAGENET1K_FBGEMM_V1", "fbgemm"),
    "resnet50": ("ResNet50_QuantizedWeights.IMAGENET1K_FBGEMM_V2", "fbgemm"),
    "mobilenet_v2": ("MobileNet_V2_QuantizedWeights.IMAGENET1K_QNNPACK_V1", "qnnpack"),
    "mobilenet_v3_large": ("MobileNet_V3_Large_QuantizedWeights.IMAGENET1K_QNNPACK_V1", "qnnpack"),
    "shufflenet_v2_x1_0": ("ShuffleNet_V2_X1_0_QuantizedWeights.IMAGENET1K_FBGEMM_V1", "fbgemm"),
    "googlenet": ("GoogLeNet_QuantizedWeights.IMAGENET1K_FBGEMM_V1", "fbgemm"),
}
TEST_MODELS = ("tiny_cnn", "memory_hog")
ACCURACY_SOURCES = ("measured", "documented_fp32", "assumed_fp16_equals_fp32", "documented_int8", "unknown")



def testing_enabled() -> bool:
    return os.environ.get("DEPLOYBENCH_TESTING") == "1"


def weights_enum(model: str, quantized: bool = False) -> Any:
    """The torchvision weights enum member of ``model`` (metadata only; loads nothing)."""
    import torchvision.models as tvm
    import torchvision.models.quantization as tvq

    enum_name, member = (QUANTIZABLE[model][0] if quantized else WEIGHTS[model][1]).split(".")
    return getattr(getattr(tvq if quantized else tvm, enum_name), member)


def _top1(weights: Any) -> float | None:
    try:
        return float(weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]) / 100.0
    except (KeyError, TypeError, ValueError):
        return None


def accuracy_for(model: str, precision: str, backend: str) -> tuple[float | None, str, str | None]:
    """(documented accuracy or None, ``accuracy_source``, the weights the figure belongs to) for one
    deployment, by the rules in the module docstring."""
    if model in TEST_MODELS:
        return 0.001, "documented_fp32", "random (test model: chance level)"
    if model not in WEIGHTS:
        w = _torchvision_default_weights(model)
        if w is not None and precision in ("fp32", "fp16"):  # another torchvision classifier (deploybench tune)
            return _top1(w), ("documented_fp32" if precision == "fp32" else "assumed_fp16_equals_fp32"), str(w)
        return None, "unknown", None
    if precision in ("fp32", "fp16"):
        w = weights_enum(model)
        return _top1(w), ("documented_fp32" if precision == "fp32" else "assumed_fp16_equals_fp32"), str(w)
    if precision == "int8_static" and backend in ("pytorch_eager", "torch_compile") and model in QUANTIZABLE:
        w = weights_enum(model, quantized=True)
        return _top1(w), "documented_int8", str(w)
    return None, "unknown", None


def _torchvision_default_weights(model: str) -> Any:
    """torchvision's default weights of a classification model outside the zoo, or None."""
    if ":" in model or "/" in model or model.endswith(".onnx"):
        return None
    try:
        import torchvision.models as tvm

        if model not in tvm.list_models(module=tvm):
            return None
        return tvm.get_model_weights(model).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return None


def cached_weights_path(model: str) -> str | None:
    """Path of the weights file in the local torch hub cache, or None when it is not there."""
    if model not in WEIGHTS:
        return None
    import torch

    url = weights_enum(model).url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return path if os.path.isfile(path) else None


def documented_accuracy(model: str) -> float | None:
    """The fp32 weights' documented ImageNet-1K top-1 (a fraction), from torchvision's weights metadata.

    The test models are randomly initialised: chance level, 1/1000."""
    return accuracy_for(model, "fp32", "pytorch_eager")[0]


def build_quantizable(model: str, calibration: list) -> tuple[Any, str]:
    """torchvision's quantizable ``model`` (random weights), fused, calibrated on ``calibration`` (a list
    of NCHW float arrays) and converted to static int8 with the engine its documented weights use."""
    import warnings

    import torch
    import torchvision.models.quantization as tvq
    from torch.ao.quantization import convert, get_default_qconfig, prepare

    engine = QUANTIZABLE[model][1]
    torch.backends.quantized.engine = engine
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = getattr(tvq, model)(weights=None, quantize=False).eval()
        net.fuse_model(is_qat=False)
        net.qconfig = get_default_qconfig(engine)
        prepare(net, inplace=True)
        with torch.no_grad():
            for batch in calibration:
                net(torch.from_numpy(batch))
        convert(net, inplace=True)
    return net, engine


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
        from .probe_models import build_test_model

        return build_test_model(model).eval(), "random"
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
