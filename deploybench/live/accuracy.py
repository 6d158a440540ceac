"""Top-1 accuracy with the correct mapping from dataset folders to ImageNet-1K class indices.

Comparing ImageFolder labels 0..9 with the argmax over 1000 ImageNet logits (as the TBA paper's
published code did) makes only the first class ever right, and taking the first 500 images in folder
order is not a sample of the classes.
Here:

- class folders are ImageNet synset ids (wnids). ``imagenet_wnids.txt`` (package data) lists the
  1000 ImageNet-1K wnids in class-index order (sorted; from timm 1.0.31 ``imagenet_synsets.txt``,
  cross-checked against torchvision's ``weights.meta["categories"]``: 998 names equal, 2 are
  torchvision's disambiguations). ``imagenette_wnids.json`` maps ImageNette's 10 folders (0, 217,
  482, 491, 497, 566, 569, 571, 574, 701); it is used when every folder is an ImageNette folder,
  because ImageNette names its parachute folder ``n03888605`` (ImageNet's "parallel bars", 702)
  while ImageNet's parachute is ``n03888257`` (701);
- the subset is fixed and stratified: the same number of images per class (the first ``per_class``
  files of each class in name order, fewer only if a class has fewer), independent of batch size;
- results are cached per (model, precision, backend, weights, subset) in ``cache_dir``.

Without data or pretrained weights the documented ImageNet-1K top-1 of the weights is used and the
record says so (``accuracy_source = "documented"``).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "imagenet_wnids",
    "imagenette_indices",
    "folder_label_indices",
    "resolve_data_dir",
    "stratified_subset",
    "measure_top1",
    "default_cache_dir",
    "cached_accuracy",
]

_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff", ".JPEG")


def imagenet_wnids() -> list[str]:
    text = resources.files("deploybench.live").joinpath("imagenet_wnids.txt").read_text(encoding="ascii")
    wnids = text.split()
    if len(wnids) != 1000:
        raise RuntimeError(f"imagenet_wnids.txt holds {len(wnids)} wnids, expected 1000")
    return wnids


def imagenette_indices() -> dict[str, int]:
    text = resources.files("deploybench.live").joinpath("imagenette_wnids.json").read_text(encoding="utf-8")
    return {k: int(v) for k, v in json.loads(text).items() if not k.startswith("_")}


def folder_label_indices(class_names: Sequence[str]) -> dict[str, int]:
    """ImageNet-1K class index of each class folder name (a wnid). Raises naming unknown folders."""
    names = list(class_names)
    nette = imagenette_indices()
    if names and all(n in nette for n in names):
        return {n: nette[n] for n in names}
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"class folders {unknown[:5]} are not ImageNet-1K synset ids (e.g. n01440764); "
                         "accuracy needs an ImageFolder whose class folders are wnids")
    return {n: index[n] for n in names}


def _class_dirs(path: str) -> list[str]:
    try:
        return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    except OSError:
        return []


def resolve_data_dir(data_dir: str) -> str:
    """The ImageFolder root under ``data_dir``: itself, ``val/`` or ``imagenette2*/val``.

    Raises :class:`FileNotFoundError` with a clear message when the path is missing or holds no
    wnid class folders.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir!r} does not exist (given with --data / data_dir); "
                                "pass an ImageFolder of ImageNet synset folders such as ImageNette's val/")
    candidates = [data_dir, os.path.join(data_dir, "val")]
    candidates += [os.path.join(data_dir, d, "val") for d in _class_dirs(data_dir) if d.startswith("imagenette")]
    for c in candidates:
        dirs = _class_dirs(c)
        if dirs and all(d.startswith("n") and d[1:].isdigit() for d in dirs):
            return c
    raise FileNotFoundError(f"no ImageNet synset class folders (n01440764, ...) found in {data_dir!r} "
                            "or its val/ subfolder")


def stratified_subset(root: str, per_class: int) -> list[tuple[str, int]]:
    """(path, ImageNet index) pairs: the same number of images from every class, deterministic."""
    classes = _class_dirs(root)
    mapping = folder_label_indices(classes)
    files = {c: sorted(f for f in os.listdir(os.path.join(root, c)) if f.endswith(_IMAGE_EXT)) for c in classes}
    n = min([per_class] + [len(v) for v in files.values()])
    if n == 0:
        raise FileNotFoundError(f"some class folder under {root!r} holds no images")
    return [(os.path.join(root, c, f), mapping[c]) for c in classes for f in files[c][:n]]


def measure_top1(predict: Callable[[np.ndarray], np.ndarray], items: Sequence[tuple[str, int]],
                 batch_size: int, transform: Callable[[Any], Any]) -> tuple[float, int]:
    """Top-1 over ``items`` (full 1000-way argmax against the mapped label). The last batch is padded
    to ``batch_size`` (static-shape backends) and the padding ignored."""
    from PIL import Image

    correct = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        arrays = []
        for path, _ in chunk:
            with Image.open(path) as img:
                arrays.append(np.asarray(transform(img.convert("RGB")), dtype=np.float32))
        batch = np.stack(arrays)
        if len(chunk) < batch_size:
            pad = np.zeros((batch_size - len(chunk),) + batch.shape[1:], dtype=np.float32)
            batch = np.concatenate([batch, pad])
        logits = predict(batch)[: len(chunk)]
        labels = np.asarray([label for _, label in chunk])
        correct += int((np.argmax(logits, axis=1) == labels).sum())
    return correct / max(1, len(items)), len(items)


def default_cache_dir() -> str:
    return os.environ.get("DEPLOYBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "deploybench")


def _cache_key(parts: Mapping[str, Any], items: Sequence[tuple[str, int]]) -> str:
    blob = json.dumps({"parts": dict(parts), "items": [(os.path.relpath(p, os.path.dirname(os.path.dirname(p))), l)
                                                       for p, l in items]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cached_accuracy(cache_dir: str | None, parts: Mapping[str, Any], items: Sequence[tuple[str, int]],
                    compute: Callable[[], tuple[float, int]]) -> tuple[float, int, bool]:
    """(top-1, n images, came from cache). The key covers model, precision, backend, weights and subset."""
    directory = os.path.join(cache_dir or default_cache_dir(), "accuracy")
    path = os.path.join(directory, _cache_key(parts, items) + ".json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return float(data["top1"]), int(data["n"]), True
    except (OSError, ValueError, KeyError):
        pass
    top1, n = compute()
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"top1": top1, "n": n, **{k: str(v) for k, v in parts.items()}}, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs time
    return top1, n, False
