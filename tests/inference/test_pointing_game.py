"""The pointing game's scoring, against scipy's binomial tail and maps made by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dltk2.inference.pointing_game import dilated, pointing_game


def test_a_peak_inside_is_a_hit_and_the_baseline_is_the_findings_area():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True  # 4 of 100 pixels
    inside, outside = np.zeros((10, 10)), np.zeros((10, 10))
    inside[3, 2], outside[8, 8] = 1.0, 1.0
    result = pointing_game([inside, outside], [mask, mask])
    assert (result["cases"], result["hits"], result["hit_rate"]) == (2, 1.0, 0.5)
    assert result["random_hit_rate"] == pytest.approx(0.04)
    # A random map hits at least once in two with 1 - 0.96^2.
    assert result["p_value"] == pytest.approx(1 - 0.96 ** 2)


def test_the_tolerance_dilates_the_finding_by_voxels():
    mask = np.zeros((5, 9, 9), bool)
    mask[2, 4, 4] = True
    near = np.zeros(mask.shape)
    near[3, 6, 2] = 1.0  # two voxels away in y and x, one in z
    assert pointing_game([near], [mask])["hits"] == 0
    result = pointing_game([near], [mask], tolerance=2)
    assert result["hits"] == 1 and result["random_hit_rate"] == pytest.approx(dilated(mask, 2).mean())
    assert dilated(mask, 2).sum() == 5 * 5 * 5


def test_a_flat_map_scores_its_chance_and_the_p_value_is_the_binomial_tail():
    rng = np.random.default_rng(3)
    masks = [np.zeros((20, 20), bool) for _ in range(30)]
    for mask in masks:
        row, column = rng.integers(0, 16, 2)
        mask[row:row + 4, column:column + 5] = True  # 20 of 400: p = 0.05 each
    flat = pointing_game([np.ones((20, 20))] * 30, masks)
    assert flat["hits"] == pytest.approx(30 * 0.05) and flat["hit_rate"] == pytest.approx(flat["random_hit_rate"])
    maps = []
    for number, mask in enumerate(masks):  # 7 of the 30 point inside
        saliency = rng.uniform(0, 0.5, (20, 20))
        saliency[tuple(np.argwhere(mask)[0] if number < 7 else np.argwhere(~mask)[0])] = 1.0
        maps.append(saliency)
    result = pointing_game(maps, masks)
    assert result["hits"] == 7 and result["p_value"] == pytest.approx(stats.binom.sf(6, 30, 0.05), rel=1e-9)


def test_mismatched_or_empty_findings_are_refused():
    with pytest.raises(ValueError, match="2 maps but 1"):
        pointing_game([np.ones((3, 3))] * 2, [np.ones((3, 3), bool)])
    with pytest.raises(ValueError, match=r"case 0: map \(3, 3\) and finding mask \(4, 4\)"):
        pointing_game([np.ones((3, 3))], [np.ones((4, 4), bool)])
    with pytest.raises(ValueError, match="case 0: its finding mask is empty"):
        pointing_game([np.ones((3, 3))], [np.zeros((3, 3), bool)])
