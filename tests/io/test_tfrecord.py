"""Tests of dltk2.io.tfrecord: round trip with native decoding, atomic shards."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from dltk2.io.tfrecord import image_dataset, image_example, label_counts, write_shards


def png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def test_round_trip_of_8_and_16_bit_pngs(tmp_path, rng):
    images = [rng.integers(0, 255, (5, 7), dtype=np.uint8), rng.integers(0, 65535, (6, 4), dtype=np.uint16)]
    examples = [image_example(png(im), "png", *im.shape, 1, label, f"class{label}", f"f{label}.png", f"p{label}")
                for label, im in enumerate(images)]
    paths = write_shards(examples, tmp_path, "demo", num_shards=2)
    assert [p.name for p in paths] == ["demo-00000-of-00002.tfrecord", "demo-00001-of-00002.tfrecord"]
    read = list(image_dataset(str(tmp_path / "demo-*.tfrecord"), dtype=tf.uint16))
    assert len(read) == 2
    assert image_dataset(str(tmp_path / "demo-*.tfrecord")).options().autotune.enabled is False
    first = read[0]
    # An 8-bit PNG decoded as uint16 is scaled by 257 (0xFF -> 0xFFFF).
    np.testing.assert_array_equal(first["image"].numpy()[..., 0], images[0].astype(np.uint16) * 257)
    np.testing.assert_array_equal(read[1]["image"].numpy()[..., 0], images[1])
    assert first["image/class/text"].numpy() == b"class0" and int(first["image/height"]) == 5
    assert read[1]["image/patient_id"].numpy() == b"p1" and read[1]["image/filename"].numpy() == b"f1.png"
    assert label_counts(str(tmp_path / "demo-*.tfrecord")) == {0: 1, 1: 1}


class Exploding:
    def SerializeToString(self):
        raise RuntimeError("killed half-way")


def test_a_failed_conversion_leaves_no_shard_under_its_final_name(tmp_path, rng):
    image = rng.integers(0, 255, (4, 4), dtype=np.uint8)
    good = image_example(png(image), "png", 4, 4, 1, 0, "none", "a.png")
    with pytest.raises(RuntimeError, match="half-way"):
        write_shards([good, Exploding()], tmp_path, "broken")
    assert list(tmp_path.iterdir()) == []


def test_no_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord files"):
        image_dataset(str(tmp_path / "*.tfrecord"))
