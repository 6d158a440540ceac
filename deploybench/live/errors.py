"""Classify why a live evaluation failed: ``oom``, ``unsupported``, ``environment``, ``timeout``, ``runtime``.

The distinction matters for the benchmark: an *environment*
failure (no Triton, no C compiler, a missing execution provider, a driver mismatch, the backend
library not importable) is a property of the machine, not of the configuration, and must never be
presented as the search space's crash structure. *unsupported* means the configuration asks for an
operator or precision the backend does not implement (e.g. ``"addmm_impl_cpu_" not implemented for
'Half'``, an ONNX export of an unsupported operator, ``NOT_IMPLEMENTED`` from ONNX Runtime).
"""

from __future__ import annotations

import re

__all__ = ["classify_error", "ERROR_KINDS"]

ERROR_KINDS = ("oom", "unsupported", "environment", "timeout", "runtime")

_OOM = re.compile(
    r"out of memory|OutOfMemoryError|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation|std::bad_alloc"
    r"|Failed to allocate memory|failed to allocate|MemoryError|Cannot allocate memory|CUBLAS_STATUS_ALLOC_FAILED",
    re.IGNORECASE,
)
_ENVIRONMENT = re.compile(
    r"TritonMissing|Cannot find a working triton|triton.*(not installed|not found)|No module named 'triton'"
    r"|InvalidCxxCompiler|Compiler: \S+ is not found|No working C compiler|C\+\+ compiler .*not found"
    r"|gcc: (command )?not found|cc: not found|Python\.h: No such file"
    r"|CUDA driver version is insufficient|no CUDA-capable device|Found no NVIDIA driver|NVIDIA driver .*too old"
    r"|CUDA unknown error|cudaErrorInsufficientDriver|cudaErrorNoDevice|Torch not compiled with CUDA"
    r"|cannot open shared object file|undefined symbol|Failed to load library|libcudnn|libcublas|libnvrtc"
    r"|ExecutionProvider.* (is )?not available|requested .*Provider.* but|Failed to create \w+ExecutionProvider"
    r"|No module named|DLL load failed|ImportError|ModuleNotFoundError"
    r"|not in the local torch hub cache|data directory .* does not exist|no ImageNet synset class folders",
    re.IGNORECASE,
)
_UNSUPPORTED = re.compile(
    r"not implemented for|NotImplementedError|NOT_IMPLEMENTED|Could not find an implementation for"
    r"|UnsupportedOperatorError|Unsupported ONNX opset|is not supported|not supported (for|on|by|with)"
    r"|Exporting the operator .* is not supported|Could not run '[^']+' with arguments from the"
    r"|No kernel (registered|found)|does not support|doesn't support|unsupported (operator|dtype|data type|precision)"
    r"|Unsupported: |torch\._dynamo\.exc\.Unsupported|quantized::\w+ .*not",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"timed out|TimeoutError|deadline exceeded", re.IGNORECASE)


def classify_error(exc: BaseException | None, stderr: str = "") -> str:
    """The error kind of a failure, from the exception (if any) and the worker's stderr text.

    Order matters: memory exhaustion is checked first (a CUDA OOM message also names CUDA), then the
    machine's environment, then unsupported operators/precisions, then timeouts; the rest is ``runtime``.
    """
    if isinstance(exc, MemoryError):
        return "oom"
    if isinstance(exc, (ImportError, ModuleNotFoundError)):
        return "environment"
    if isinstance(exc, TimeoutError):
        return "timeout"
    name = type(exc).__name__ if exc is not None else ""
    text = f"{name}: {exc}\n{stderr or ''}" if exc is not None else (stderr or "")
    if _OOM.search(text):
        return "oom"
    if _ENVIRONMENT.search(text):
        return "environment"
    if isinstance(exc, NotImplementedError) or _UNSUPPORTED.search(text):
        return "unsupported"
    if _TIMEOUT.search(text):
        return "timeout"
    return "runtime"
