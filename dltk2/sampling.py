"""Drawing training examples (patches) from whole volumes.

Every function takes a ``numpy.random.Generator`` (or a seed) so that sampling is reproducible.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dltk2.preprocessing import resize_image_with_crop_or_pad


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _pad_to_at_least(array: np.ndarray, example_size: Sequence[int]) -> np.ndarray:
    wanted = [max(have, want) for have, want in zip(array.shape, example_size)]
    if list(array.shape[: len(example_size)]) == wanted:
        return array
    return resize_image_with_crop_or_pad(array, wanted)


def extract_random_example_array(
    image_list: np.ndarray | Sequence[np.ndarray],
    example_size: Sequence[int],
    n_examples: int = 1,
    rng: np.random.Generator | int | None = None,
) -> list[np.ndarray]:
    """Extracts the same random patches from several images of one spatial shape.

    Every valid corner ``0 <= c <= shape - example_size`` is drawn with equal probability. Images
    smaller than ``example_size`` along an axis are first zero-padded (centred) to fit.

    Args:
        image_list: One array, or several sharing their leading ``len(example_size)`` dimensions
            (e.g. an image (z, y, x, c) and its label (z, y, x)).
        example_size: Patch size along the leading axes, e.g. (64, 96, 96).
        n_examples: Number of patches.
        rng: Random generator or seed.

    Returns:
        One array per input, of shape ``(n_examples, *example_size, *trailing)``.
    """
    images = [image_list] if isinstance(image_list, np.ndarray) else list(image_list)
    if not images:
        raise ValueError("image_list is empty")
    rank = len(example_size)
    spatial = images[0].shape[:rank]
    for image in images[1:]:
        if image.shape[:rank] != spatial:
            raise ValueError(f"images differ in spatial shape: {spatial} vs {image.shape[:rank]}")
    if n_examples < 1:
        raise ValueError(f"n_examples must be >= 1, got {n_examples}")
    rng = _generator(rng)
    images = [_pad_to_at_least(image, example_size) for image in images]
    shape = np.array(images[0].shape[:rank])
    high = shape - np.array(example_size) + 1  # exclusive bound: the last valid corner is reachable
    corners = rng.integers(0, high, size=(n_examples, rank))
    outputs = []
    for image in images:
        patches = [image[tuple(slice(c, c + s) for c, s in zip(corner, example_size))] for corner in corners]
        outputs.append(np.stack(patches))
    return outputs


def extract_class_balanced_example_array(
    image: np.ndarray,
    label: np.ndarray,
    example_size: Sequence[int],
    n_examples: int = 1,
    classes: int | Sequence[int] = 2,
    class_weights: Sequence[float] | None = None,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Extracts patches centred on voxels of each class, so rare classes are seen as often as common.

    For each patch a class is drawn (by ``class_weights``, equal by default) among the classes present
    in ``label``, then a voxel of that class is drawn uniformly and the patch is centred on it (shifted
    inwards where it would leave the volume). Classes absent from the label are skipped and their share
    goes to the others.

    Args:
        image: Array (z, y, x[, c]).
        label: Integer array (z, y, x) of the same spatial shape.
        example_size: Patch size (z, y, x).
        n_examples: Number of patches.
        classes: Number of classes (0..n-1), or the list of class values.
        class_weights: Relative frequency of each class among the patches.
        rng: Random generator or seed.

    Returns:
        ``(image_patches, label_patches)`` of shapes ``(n, *example_size[, c])`` and ``(n, *example_size)``.
    """
    rank = len(example_size)
    if image.shape[:rank] != label.shape[:rank]:
        raise ValueError(f"image {image.shape[:rank]} and label {label.shape[:rank]} differ in shape")
    class_values = list(range(classes)) if isinstance(classes, int) else list(classes)
    weights = np.ones(len(class_values)) if class_weights is None else np.asarray(class_weights, float)
    if len(weights) != len(class_values):
        raise ValueError(f"{len(weights)} class_weights for {len(class_values)} classes")
    rng = _generator(rng)
    image = _pad_to_at_least(image, example_size)
    label = _pad_to_at_least(label, example_size)
    present = [i for i, value in enumerate(class_values) if weights[i] > 0 and np.any(label == value)]
    if not present:
        raise ValueError(f"none of the classes {class_values} occurs in the label")
    probabilities = weights[present] / weights[present].sum()
    chosen = rng.choice(len(present), size=n_examples, p=probabilities)
    shape = np.array(label.shape[:rank])
    size = np.array(example_size)
    image_patches, label_patches = [], []
    voxel_cache: dict[int, np.ndarray] = {}
    for index in chosen:
        value = class_values[present[index]]
        if value not in voxel_cache:
            voxel_cache[value] = np.argwhere(label == value)
        centre = voxel_cache[value][rng.integers(len(voxel_cache[value]))]
        corner = np.clip(centre - size // 2, 0, shape - size)
        region = tuple(slice(c, c + s) for c, s in zip(corner, size))
        image_patches.append(image[region])
        label_patches.append(label[region])
    return np.stack(image_patches), np.stack(label_patches)
