"""Tests of dltk2.datasets.images2d: batches of grey 2D images from TFRecord shards."""

import numpy as np
from dltk2.datasets import images2d
from dltk2.inference import grey_image_input
from dltk2.io.tfrecord import image_example, write_shards


def write_images(directory, rng, labels):
    images = [rng.integers(0, 4000, (12 + i, 9), dtype=np.uint16) for i in range(len(labels))]
    examples = []
    for index, (image, label) in enumerate(zip(images, labels)):
        path = images2d.write_png(directory / f"im{index}.png", image)
        data, height, width = images2d.encode_png(path)
        examples.append(image_example(data, "png", height, width, 1, label, f"class{label}", path.name))
    write_shards(examples, directory, "split", num_shards=2)
    return images, str(directory / "split-*.tfrecord")


def test_evaluation_batches_hold_every_image_preprocessed_as_served(tmp_path, rng):
    labels = [0, 2, 1, 2, 0]
    images, pattern = write_images(tmp_path, rng, labels)
    weights = images2d.class_weights(labels, 3)
    batches = list(images2d.classification_dataset(pattern, 16, batch_size=2, weights=weights, with_names=True))
    assert [len(batch[0]) for batch in batches] == [2, 2, 1]
    names = np.concatenate([batch[3].numpy() for batch in batches]).astype(str)
    by_name = {name: index for index, name in enumerate(f"im{i}.png" for i in range(len(labels)))}
    order = [by_name[name] for name in names]
    assert sorted(order) == list(range(len(labels)))
    np.testing.assert_array_equal(np.concatenate([batch[1].numpy() for batch in batches]), np.array(labels)[order])
    np.testing.assert_allclose(np.concatenate([batch[2].numpy() for batch in batches]), weights[np.array(labels)[order]])
    first = batches[0][0][0].numpy()
    assert first.shape == (16, 16, 1) and first.dtype == np.float32
    np.testing.assert_allclose(first, grey_image_input(images[order[0]], 16).numpy(), atol=1e-6)


def test_training_batches_repeat_without_tfdatas_autotuning_model(tmp_path, rng):
    _, pattern = write_images(tmp_path, rng, [0, 1, 1])
    dataset = images2d.classification_dataset(pattern, 8, batch_size=2, training=True, seed=0)
    batches = list(dataset.take(4))  # 8 examples from 3 images: the pipeline repeats
    assert all(images.shape == (2, 8, 8, 1) and labels.shape == (2,) for images, labels in batches)
    assert set(np.concatenate([labels.numpy() for _, labels in batches])) == {0, 1}
    assert dataset.options().autotune.enabled is False  # dltk2.io.pipeline's options
    values = np.concatenate([images.numpy() for images, _ in batches])
    assert -0.05 <= values.min() and values.max() <= 1.05  # min-max scaled, then a random brightness of +-0.05


def test_class_coverage_names_the_classes_a_data_set_leaves_out():
    from dltk2.datasets.images2d import class_coverage

    classes = ["Abdomen", "Chest", "Head"]
    assert class_coverage({0: 3, 1: 2, 2: 1}, classes, "x") is None
    assert class_coverage({1: 40}, classes, "index.csv: the train split's images") == (
        "index.csv: the train split's images hold 1 of 3 classes (Chest: 40); none of Abdomen, Head; "
        "a classifier trained on them can answer only that class")
    assert class_coverage({0: 2, 2: 5, 1: 0}, classes, "y") == "y hold 2 of 3 classes (Abdomen: 2, Head: 5); none of Chest"
