"""Tests of dltk2.apps.segmentation's summary (segment_cases runs in test_sliding_window_segmenter.py)."""

import numpy as np
import pandas as pd
import pytest

from dltk2.apps.segmentation import summary_table


def test_summary_averages_present_classes_and_counts_missed_ones():
    names = {1: "liver", 2: "spleen"}
    results = pd.DataFrame({
        "id": ["a", "b", "c"],
        "dice/liver": [0.9, 0.8, np.nan], "hd95_mm/liver": [2.0, 4.0, np.nan],
        "dice/spleen": [0.0, 0.6, 0.7], "hd95_mm/spleen": [np.inf, 3.0, 5.0],
    })
    table = summary_table(results, names).set_index("class")
    assert table.loc["liver", "dice"] == pytest.approx(0.85) and table.loc["liver", "cases"] == 2
    assert table.loc["liver", "hd95_mm"] == pytest.approx(3.0)
    # A spleen missed entirely scores Dice 0 and an infinite HD95: counted, not averaged in.
    assert table.loc["spleen", "dice"] == pytest.approx(np.mean([0.0, 0.6, 0.7]))
    assert table.loc["spleen", "hd95_mm"] == pytest.approx(4.0) and table.loc["spleen", "hd95_missed"] == 1
    assert table.loc["mean", "dice"] == pytest.approx((0.85 + np.mean([0.0, 0.6, 0.7])) / 2)
    assert table.loc["mean", "hd95_missed"] == 1
