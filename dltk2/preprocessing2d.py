"""2D image preprocessing methods of the DICOM body-part pipeline, on 8- or 16-bit grey images.

Each method takes a (height, width) uint8 or uint16 image and a strength ``value``; a value outside
the method's range is clamped to it (as the original pipeline did), and the output has the input's
dtype. The work is done by OpenCV, scikit-image and scikit-learn.

- ``bitwise_downsampling`` (1-8): keep the ``value`` most significant bits of the 8-bit image.
- ``contrast_enhancing`` (1-10): CLAHE (contrast-limited adaptive histogram equalisation) with clip
  limit ``value`` on 8x8 tiles.
- ``color_quantization`` (2-10): k-means on the intensities into ``value`` clusters, each pixel set to
  its cluster's centre.
- ``target_segmentation`` (1-10): Otsu's threshold, then the ``value`` largest connected foreground
  regions are kept (holes filled) and the rest set to 0.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from scipy import ndimage

RANGES = {
    "bitwise_downsampling": (1, 8),
    "contrast_enhancing": (1, 10),
    "color_quantization": (2, 10),
    "target_segmentation": (1, 10),
}


def clamp_value(method: str, value: float) -> int:
    """The method's strength clamped to its range (see :data:`RANGES`)."""
    if method not in RANGES:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(RANGES)}")
    low, high = RANGES[method]
    return int(min(max(round(value), low), high))


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a (height, width) uint8 or uint16 image, got {image.shape} {image.dtype}")
    return image


def bitwise_downsampling(image: np.ndarray, bits: int) -> np.ndarray:
    """Keeps the ``bits`` most significant bits (of 8 for uint8, of 16 for uint16)."""
    image = _check(image)
    depth = image.dtype.itemsize * 8
    bits = clamp_value("bitwise_downsampling", bits)
    shift = depth - bits * depth // 8
    return ((image >> shift) << shift).astype(image.dtype)


def contrast_enhancing(image: np.ndarray, clip_limit: float) -> np.ndarray:
    """CLAHE with ``clip_limit`` (1-10) on 8x8 tiles (OpenCV)."""
    image = _check(image)
    clahe = cv2.createCLAHE(clipLimit=float(clamp_value("contrast_enhancing", clip_limit)), tileGridSize=(8, 8))
    return clahe.apply(image)


def color_quantization(image: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """k-means (scikit-learn) on the intensities: each pixel becomes its cluster centre."""
    image = _check(image)
    clusters = clamp_value("color_quantization", clusters)
    values = image.reshape(-1, 1).astype(np.float32)
    distinct = np.unique(values)
    if len(distinct) <= clusters:
        return image.copy()
    sample = values[np.random.default_rng(seed).choice(len(values), min(len(values), 20000), replace=False)]
    from sklearn.cluster import KMeans  # here: scikit-learn and scikit-image take 3 s to import

    model = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(sample)
    centres = np.round(model.cluster_centers_[:, 0])
    return centres[model.predict(values)].reshape(image.shape).astype(image.dtype)


def target_segmentation(image: np.ndarray, regions: int) -> np.ndarray:
    """Otsu foreground; the ``regions`` largest connected regions kept (holes filled), the rest 0."""
    image = _check(image)
    regions = clamp_value("target_segmentation", regions)
    if image.min() == image.max():
        return image.copy()
    from skimage import filters, measure

    foreground = image > filters.threshold_otsu(image)
    labelled = measure.label(foreground, connectivity=2)
    if labelled.max() == 0:
        return np.zeros_like(image)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    keep = np.argsort(sizes)[::-1][:regions]
    mask = ndimage.binary_fill_holes(np.isin(labelled, keep[sizes[keep] > 0]))
    return np.where(mask, image, 0).astype(image.dtype)


METHODS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "bitwise_downsampling": bitwise_downsampling,
    "contrast_enhancing": contrast_enhancing,
    "color_quantization": color_quantization,
    "target_segmentation": target_segmentation,
}
