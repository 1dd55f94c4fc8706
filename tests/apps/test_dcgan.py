"""Tests of dltk2.apps.dcgan's checks: nearest-neighbour distances and copies, histogram distances."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from dltk2.apps.dcgan import nearest_distances, sample_checks


def test_nearest_distances_are_scipys_and_copies_are_caught(rng):
    training = rng.uniform(-1, 1, (12, 4, 5, 6))
    volumes = rng.uniform(-1, 1, (5, 4, 5, 6))
    expected = cdist(volumes.reshape(5, -1), training.reshape(12, -1)).min(axis=1) / np.sqrt(4 * 5 * 6)
    np.testing.assert_allclose(nearest_distances(volumes, training), expected, rtol=1e-6)
    held_out = rng.uniform(-1, 1, (6, 4, 5, 6))
    copies = training[:3] + rng.normal(0, 0.01, (3, 4, 5, 6))
    checks = sample_checks(np.concatenate([copies, volumes]), training, held_out)
    assert checks["samples_closer_than_any_held_out"] == 3
    # Samples from the data's own distribution: histogram distance near the held-out's, far below noise's.
    assert checks["sample_histogram_distance"] == pytest.approx(checks["held_out_histogram_distance"], abs=0.05)
    squashed = sample_checks(volumes * 0.1, training, held_out)
    assert squashed["sample_histogram_distance"] > 5 * squashed["held_out_histogram_distance"]
