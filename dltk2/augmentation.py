"""Random augmentations that move an image and its label together.

Spatial functions take a list of arrays sharing their spatial shape (image, label, ...) and apply one
random draw to all of them; labels are resampled with nearest neighbour. Intensity functions take one
image. Arrays are in (z, y, x[, c]) order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def flip(
    image_list: Sequence[np.ndarray],
    axis: int | Sequence[int] = 2,
    probability: float = 0.5,
    rng: np.random.Generator | int | None = None,
) -> list[np.ndarray]:
    """Flips all arrays along each of ``axis``, each axis with ``probability``, the same for all.

    Args:
        image_list: Arrays sharing their spatial shape.
        axis: Spatial axis or axes; 2 is x (left-right for axial brain MRI in RAS/LPS data).
        probability: Chance that each axis is flipped.
        rng: Random generator or seed.
    """
    rng = _generator(rng)
    axes = [axis] if isinstance(axis, int) else list(axis)
    flipped = [ax for ax in axes if rng.random() < probability]
    if not flipped:
        return list(image_list)
    return [np.flip(image, axis=flipped).copy() for image in image_list]


def add_gaussian_offset(
    image: np.ndarray, sigma: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Adds one offset drawn from N(0, sigma) to the whole image (per channel if it has channels)."""
    rng = _generator(rng)
    image = np.asarray(image, dtype=np.float32)
    offset_shape = (image.shape[-1],) if image.ndim == 4 else ()
    return (image + rng.normal(0.0, sigma, size=offset_shape)).astype(np.float32)


def add_gaussian_noise(
    image: np.ndarray, sigma: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Adds independent N(0, sigma) noise to every voxel."""
    rng = _generator(rng)
    image = np.asarray(image, dtype=np.float32)
    return (image + rng.normal(0.0, sigma, size=image.shape)).astype(np.float32)


def elastic_transform(
    image_list: Sequence[np.ndarray],
    alpha: float | Sequence[float],
    sigma: float | Sequence[float],
    is_label: Sequence[bool] | None = None,
    rng: np.random.Generator | int | None = None,
) -> list[np.ndarray]:
    """Deforms all arrays with one smooth random displacement field.

    The field is white noise in [-1, 1] per axis, smoothed with a Gaussian of ``sigma`` voxels and
    scaled by ``alpha`` voxels. Images are interpolated linearly, labels with nearest neighbour; points
    mapping outside take the nearest edge value.

    Args:
        image_list: Arrays of one spatial shape (3 leading axes), optionally with a channel axis.
        alpha: Displacement scale per spatial axis, in voxels.
        sigma: Smoothness of the field per spatial axis, in voxels.
        is_label: Per array, True for nearest-neighbour resampling; default: integer arrays are labels.
        rng: Random generator or seed.
    """
    rng = _generator(rng)
    images = list(image_list)
    spatial = images[0].shape[:3]
    for image in images:
        if image.shape[:3] != spatial:
            raise ValueError(f"arrays differ in spatial shape: {spatial} vs {image.shape[:3]}")
    alphas = np.broadcast_to(np.asarray(alpha, dtype=float), (3,))
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=float), (3,))
    if is_label is None:
        is_label = [np.issubdtype(image.dtype, np.integer) or image.dtype == bool for image in images]
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in spatial], indexing="ij")
    coordinates = []
    for axis in range(3):
        noise = rng.uniform(-1.0, 1.0, size=spatial).astype(np.float32)
        field = ndimage.gaussian_filter(noise, sigmas, mode="constant") * alphas[axis]
        coordinates.append(grid[axis] + field)
    outputs = []
    for image, label in zip(images, is_label):
        order = 0 if label else 1
        if image.ndim == 3:
            warped = ndimage.map_coordinates(image, coordinates, order=order, mode="nearest")
        else:
            warped = np.stack(
                [
                    ndimage.map_coordinates(image[..., c], coordinates, order=order, mode="nearest")
                    for c in range(image.shape[-1])
                ],
                axis=-1,
            )
        outputs.append(warped.astype(image.dtype, copy=False))
    return outputs
