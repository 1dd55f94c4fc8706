"""Tests of dltk2.datasets.super_resolution: block averages as scikit-image's, pairs that belong together."""

import numpy as np
import pytest
import SimpleITK as sitk
from skimage.measure import block_reduce

from dltk2.datasets import super_resolution as sr
from dltk2.io.reader import Mode


def test_downsample_is_the_block_mean_of_whole_blocks(rng):
    volume = rng.normal(size=(9, 10, 13, 2)).astype(np.float32)
    low = sr.downsample(volume, (4, 2, 4))
    assert low.shape == (2, 5, 3, 2)
    np.testing.assert_allclose(low, block_reduce(volume[:8, :10, :12], (4, 2, 4, 1), np.mean), atol=1e-6)
    assert sr.whole_blocks(volume, 4).shape == (8, 8, 12, 2)


def test_training_pairs_are_a_crop_and_its_average_whitened_by_the_twins_statistics(tmp_path, rng):
    path = tmp_path / "T1.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(rng.normal(300, 50, (20, 24, 28)).astype(np.float32)), str(path))
    params = {"example_size": [8, 8, 8], "n_examples": 5, "factors": [4, 4, 4]}
    examples = list(sr.read_fn(("IXI1", str(path)), Mode.TRAIN, params))
    assert len(examples) == 5
    for example in examples:
        low, high = example["features"]["x"], example["labels"]["y"]
        assert low.shape == (2, 2, 2, 1) and high.shape == (8, 8, 8, 1)
        np.testing.assert_allclose(low, sr.downsample(high, 4), atol=1e-5)
    (whole,) = sr.read_fn(("IXI1", str(path)), Mode.PREDICT, params)
    twin = whole["features"]["x"]
    assert twin.shape == (5, 6, 7, 1) and twin.mean() == pytest.approx(0, abs=1e-5) and twin.std() == pytest.approx(1, abs=1e-4)
    with pytest.raises(ValueError, match=r"example_size \[8, 10, 8\] must be whole multiples of the factors \[4, 4, 4\]"):
        sr.build_reader([8, 10, 8], 4)
