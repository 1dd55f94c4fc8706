"""Tests of dltk2.volume_sampling against the numpy samplers of dltk2.sampling and dltk2.augmentation."""

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from dltk2.io.reader import ReaderError
from dltk2.sampling import _pad_to_at_least
from dltk2.volume_sampling import (cached_volume_dataset, pad_to_at_least, random_crop_training_dataset,
                                   random_crops, random_flip)


def _corner_of(crop: np.ndarray, volume: np.ndarray) -> tuple[int, ...]:
    """The corner where ``crop`` lies in ``volume`` (both (z, y, x, c)); fails if nowhere."""
    windows = sliding_window_view(volume, crop.shape)
    matches = np.argwhere((windows == crop).all(axis=(-4, -3, -2, -1)))
    assert len(matches) >= 1, "crop is not a slice of the volume"
    return tuple(int(v) for v in matches[0][:3])


@pytest.mark.parametrize("shape", [(5, 6, 7, 1), (4, 9, 2, 2), (9, 9, 9, 1)])
def test_padding_matches_the_numpy_sampler(rng, shape):
    volume = rng.normal(size=shape).astype(np.float32)
    ours = pad_to_at_least(tf.constant(volume), [8, 8, 8]).numpy()
    np.testing.assert_array_equal(ours, _pad_to_at_least(volume, [8, 8, 8]))


def test_random_crops_are_slices_and_reach_every_corner(rng):
    volume = rng.normal(size=(6, 5, 7, 2)).astype(np.float32)
    crops = random_crops(tf.constant(volume), [4, 4, 4], n_examples=300).numpy()
    assert crops.shape == (300, 4, 4, 4, 2)
    corners = {_corner_of(crop, volume) for crop in crops}
    assert corners == {(z, y, x) for z in range(3) for y in range(2) for x in range(4)}  # all 24 corners


def test_random_crops_of_a_small_volume_come_from_its_padded_version(rng):
    volume = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    crops = random_crops(tf.constant(volume), [6, 4, 4], n_examples=5).numpy()
    padded = _pad_to_at_least(volume, [6, 4, 4])
    for crop in crops:
        assert _corner_of(crop, padded)[0] == 0


def test_stateless_seed_repeats_crops(rng):
    volume = tf.constant(rng.normal(size=(10, 10, 10, 1)).astype(np.float32))
    seed = tf.constant([3, 4])
    np.testing.assert_array_equal(random_crops(volume, [4, 4, 4], 3, seed), random_crops(volume, [4, 4, 4], 3, seed))


def test_random_flip_probability_and_axis(rng):
    volume = tf.constant(rng.normal(size=(3, 4, 5, 1)).astype(np.float32))
    np.testing.assert_array_equal(random_flip(volume, 2, probability=0.0), volume)
    np.testing.assert_array_equal(random_flip(volume, 2, probability=1.0), volume.numpy()[:, :, ::-1])
    flipped = sum(bool(np.array_equal(random_flip(volume, 1).numpy(), volume.numpy()[:, ::-1])) for _ in range(200))
    assert 60 < flipped < 140


def _volumes_and_rows(count: int):
    # Volume i is asymmetric along x and holds values i*100 + x: a crop tells its volume and its flip.
    rows = [[f"s{i}", f"/data/s{i}.nii.gz", str(i % 2)] for i in range(count)]
    x = np.arange(12, dtype=np.float32)
    volumes = {row[1]: np.broadcast_to(i * 100 + x, (7, 9, 12))[..., None].copy() for i, row in enumerate(rows)}
    return rows, volumes


def test_cached_volumes_are_read_once(rng):
    rows, volumes = _volumes_and_rows(3)
    calls = []

    def load(row):
        calls.append(row[0])
        return volumes[row[1]], np.int32(row[2])

    dataset = cached_volume_dataset(rows, load, tf.int32)
    for _ in range(3):
        elements = list(dataset)
    assert sorted(calls) == ["s0", "s1", "s2"]
    assert [int(label) for _, label in elements] == [0, 1, 0]
    np.testing.assert_array_equal(elements[2][0], volumes["/data/s2.nii.gz"])


def test_cached_volume_errors_name_the_row():
    def load(row):
        raise OSError(f"{row[1]}: no such file")

    dataset = cached_volume_dataset([["s0", "/data/gone.nii.gz", "0"]], load, tf.int32)
    # ReaderError is a DataError (a ValueError): tf.data reports it as InvalidArgumentError.
    with pytest.raises((ReaderError, tf.errors.InvalidArgumentError), match=r"gone\.nii\.gz: no such file"):
        list(dataset)


def test_training_batches_mix_volumes_keep_labels_and_flip_crops():
    rows, volumes = _volumes_and_rows(4)
    dataset = cached_volume_dataset(rows, lambda row: (volumes[row[1]], np.int32(row[2])), tf.int32)
    batches = random_crop_training_dataset(dataset, [4, 5, 6], n_examples=2, batch_size=8, shuffle_buffer_size=8)
    seen_volumes, flips = set(), 0
    for crops, labels in batches.take(25):
        assert crops.shape == (8, 4, 5, 6, 1) and labels.shape == (8,)
        for crop, label in zip(crops.numpy(), labels.numpy()):
            line = crop[0, 0, :, 0]
            volume = int(line.min()) // 100
            assert label == volume % 2  # the crop keeps its own volume's label
            assert np.array_equal(np.abs(np.diff(line)), np.ones(5))  # a contiguous run of x
            flips += line[0] > line[-1]
            seen_volumes.add(volume)
    assert seen_volumes == {0, 1, 2, 3}
    assert 50 < flips < 150  # of 200 crops, about half flipped
    assert batches.options().autotune.enabled is False  # dltk2.io.pipeline's options
