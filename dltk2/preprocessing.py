"""Intensity normalisation, clipping, resampling and cropping of medical images.

Array functions take numpy arrays in (z, y, x[, channels]) order. Resampling takes SimpleITK images,
because it needs their geometry; spacing is given in (x, y, z) order and mm, as SimpleITK does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

# The intensity transforms live beside their TensorFlow twins; imported here where they always were.
from dltk2.transforms import clip, clip_and_scale, normalise_one_one, normalise_zero_one, whitening  # noqa: F401

_INTERPOLATORS = {
    "nearest": sitk.sitkNearestNeighbor,
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
}


def resample_to_spacing(
    image: sitk.Image,
    spacing: Sequence[float],
    is_label: bool = False,
    interpolator: str = "linear",
    fill_value: float = 0.0,
) -> sitk.Image:
    """Resamples an image to a new voxel spacing, keeping its physical extent, origin and direction.

    The output size is ``round(size * old_spacing / new_spacing)`` per axis (at least 1). The first
    voxel's centre stays at the origin, as ITK's convention keeps it.

    Args:
        image: A SimpleITK image.
        spacing: New voxel size along (x, y, z), in mm.
        is_label: Use nearest-neighbour interpolation (labels must not be blended).
        interpolator: ``"linear"`` or ``"bspline"`` for images; ignored for labels.
        fill_value: Value of voxels that map outside the input (an intensity, in the image's units).

    Returns:
        The resampled image, of the input's pixel type.
    """
    spacing = [float(s) for s in spacing]
    if len(spacing) != image.GetDimension():
        raise ValueError(f"spacing {spacing} has {len(spacing)} values for a {image.GetDimension()}D image")
    if min(spacing) <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    old_size = np.array(image.GetSize(), dtype=np.float64)
    old_spacing = np.array(image.GetSpacing(), dtype=np.float64)
    new_size = np.maximum(np.round(old_size * old_spacing / np.array(spacing)), 1).astype(int)
    method = "nearest" if is_label else interpolator
    if method not in _INTERPOLATORS:
        raise ValueError(f"unknown interpolator {interpolator!r}; choose one of {sorted(_INTERPOLATORS)}")
    return sitk.Resample(
        image,
        [int(s) for s in new_size],
        sitk.Transform(),
        _INTERPOLATORS[method],
        image.GetOrigin(),
        spacing,
        image.GetDirection(),
        float(fill_value),
        image.GetPixelID(),
    )


def resample_to_reference(
    image: sitk.Image,
    reference: sitk.Image,
    is_label: bool = False,
    interpolator: str = "linear",
    fill_value: float = 0.0,
) -> sitk.Image:
    """Resamples ``image`` onto the grid (size, spacing, origin, direction) of ``reference``."""
    method = "nearest" if is_label else interpolator
    if method not in _INTERPOLATORS:
        raise ValueError(f"unknown interpolator {interpolator!r}; choose one of {sorted(_INTERPOLATORS)}")
    return sitk.Resample(
        image, reference, sitk.Transform(), _INTERPOLATORS[method], float(fill_value), image.GetPixelID()
    )


def resize_image_with_crop_or_pad(
    image: np.ndarray, img_size: Sequence[int], **pad_kwargs
) -> np.ndarray:
    """Centre-crops or pads an image to ``img_size`` along its leading axes.

    Where a dimension is larger than requested it is cropped symmetrically (the extra voxel, if odd,
    comes off the end); where smaller it is padded symmetrically with ``np.pad(**pad_kwargs)``
    (constant 0 by default). Trailing axes beyond ``len(img_size)`` (channels) are kept.

    Args:
        image: Array of rank >= len(img_size).
        img_size: Wanted size of the leading axes.

    Returns:
        Array of shape ``tuple(img_size) + image.shape[len(img_size):]``.
    """
    image = np.asarray(image)
    rank = len(img_size)
    if image.ndim < rank:
        raise ValueError(f"image of rank {image.ndim} cannot be resized to {tuple(img_size)}")
    slicer = []
    padding = []
    for have, want in zip(image.shape[:rank], img_size):
        if want <= 0:
            raise ValueError(f"img_size must be positive, got {tuple(img_size)}")
        if have >= want:
            start = (have - want) // 2
            slicer.append(slice(start, start + want))
            padding.append((0, 0))
        else:
            slicer.append(slice(None))
            before = (want - have) // 2
            padding.append((before, want - have - before))
    padding.extend([(0, 0)] * (image.ndim - rank))
    cropped = image[tuple(slicer)]
    if any(p != (0, 0) for p in padding):
        pad_kwargs.setdefault("mode", "constant")
        cropped = np.pad(cropped, padding, **pad_kwargs)
    return cropped


def read_whitened_channels(paths: Sequence[str]) -> np.ndarray:
    """Co-registered sequences (one file each) stacked, each whitened over its volume: float32 (z, y, x, channels).

    Raises:
        DataError: A sequence on another grid than the first, named with both sizes.
    """
    from pathlib import Path

    from dltk2.errors import DataError
    from dltk2.io.image import read_voxels

    volumes = [read_voxels(path) for path in paths]
    for path, volume in zip(paths[1:], volumes[1:]):
        if volume.shape != volumes[0].shape:
            raise DataError(f"{path}: {volume.shape} voxels, but {Path(paths[0]).name} has {volumes[0].shape}: "
                            "the sequences must be co-registered on one grid")
    return np.stack([whitening(volume) for volume in volumes], axis=-1)
