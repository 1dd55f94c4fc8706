"""The pointing game: does a saliency map's maximum fall inside the finding a case was labelled for?

Zhang et al. 2016 ("Top-down neural attention by excitation backprop") score a map as a hit when its
maximum lies inside the annotated object, within a tolerance (15 pixels of 224 there). Here the
tolerance is in voxels of the map's grid, per axis if need be, and is applied by dilating the finding's
mask, so a hit is "the peak lies within ``tolerance`` voxels of the finding".

A map that knows nothing puts its maximum anywhere: its expected hit rate is the mean fraction of the
grid the (dilated) findings cover. :func:`pointing_game` reports that baseline beside the hit rate,
and the chance that such a map hits at least as often (the exact tail of the Poisson-binomial
distribution of independent cases, each hit with its own area fraction), so a test can ask for more
than luck. Where a map's maximum is shared by several voxels (a flat map), the case counts as the
fraction of those voxels inside the finding: a random choice among them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def dilated(mask: np.ndarray, tolerance: int | Sequence[int]) -> np.ndarray:
    """``mask`` grown by ``tolerance`` voxels along each axis (one for all, or one per axis): a box.

    A per-axis tolerance suits a map coarser along some axes than others (a series classifier's
    feature map: a few slices deep, 8 pixels a cell in-plane).
    """
    mask = np.asarray(mask, bool)
    reach = [int(t) for t in np.broadcast_to(tolerance, (mask.ndim,))]
    if min(reach) < 0:
        raise ValueError(f"tolerance {tolerance} is negative")
    for axis, steps in enumerate(reach):
        if steps:
            shape = [1] * mask.ndim
            shape[axis] = 2 * steps + 1
            mask = ndimage.binary_dilation(mask, structure=np.ones(shape, bool))
    return mask


def _at_least(successes: float, probabilities: np.ndarray) -> float:
    """P(at least ``successes`` of independent trials succeed), trial i with ``probabilities[i]``."""
    distribution = np.zeros(len(probabilities) + 1)
    distribution[0] = 1.0
    for p in probabilities:  # the Poisson-binomial distribution, one trial at a time
        distribution[1:] = distribution[1:] * (1 - p) + distribution[:-1] * p
        distribution[0] *= 1 - p
    return float(distribution[int(np.ceil(successes - 1e-9)):].sum())


def pointing_game(saliency_maps: Sequence[np.ndarray], finding_masks: Sequence[np.ndarray],
                  tolerance: int | Sequence[int] = 0) -> dict:
    """Hit rate of the maps' maxima on the findings, against a map that points anywhere.

    Args:
        saliency_maps: One map per case, any shape ((h, w), (z, y, x)), larger = more salient.
        finding_masks: One bool mask per case on its map's grid: where the finding lies. A case
            without any finding is refused (it cannot be pointed at).
        tolerance: Voxels of slack around each finding, one for all axes or one per axis
            (:func:`dilated`).

    Returns:
        ``cases``, ``hits`` (a shared maximum counts its fraction inside), ``hit_rate``,
        ``random_hit_rate`` (the mean area fraction of the dilated findings), ``p_value`` (the chance
        of a random map scoring ``hits`` or more), ``tolerance``.

    Raises:
        ValueError: Counts or shapes that do not match, or a mask with no finding.
    """
    if len(saliency_maps) != len(finding_masks):
        raise ValueError(f"{len(saliency_maps)} maps but {len(finding_masks)} finding masks")
    hits, fractions = [], []
    for index, (saliency, mask) in enumerate(zip(saliency_maps, finding_masks)):
        saliency, mask = np.asarray(saliency, np.float64), dilated(mask, tolerance)
        if saliency.shape != mask.shape:
            raise ValueError(f"case {index}: map {saliency.shape} and finding mask {mask.shape} differ")
        if not mask.any():
            raise ValueError(f"case {index}: its finding mask is empty")
        peaks = saliency == saliency.max()
        hits.append(float(mask[peaks].mean()))
        fractions.append(float(mask.mean()))
    cases, total = len(hits), float(np.sum(hits))
    return {"cases": cases, "hits": total, "hit_rate": total / cases if cases else float("nan"),
            "random_hit_rate": float(np.mean(fractions)) if cases else float("nan"),
            "p_value": _at_least(total, np.asarray(fractions)) if cases else 1.0,
            "tolerance": np.asarray(tolerance).tolist()}
