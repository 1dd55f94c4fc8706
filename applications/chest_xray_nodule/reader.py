"""Reading the chest X-ray TFRecords: the training input (augmented, class-weighted) and evaluation input.

Images are min-max scaled and padded to the model's square size by
:func:`dltk2.inference.grey_image_input`, the same function inside the exported serving signature.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dltk2.datasets.chest_xray import augment_radiograph
from dltk2.datasets.images2d import classification_dataset


def training_dataset(files, size: int, batch_size: int, weights: np.ndarray | None, seed: int) -> tf.data.Dataset:
    """Endless shuffled batches of (image, label, weight) with flips, brightness and contrast."""
    return classification_dataset(files, size, batch_size, weights, training=True, seed=seed,
                                  augment=lambda image: augment_radiograph(image, seed))


def evaluation_dataset(files, size: int, batch_size: int, with_names: bool = False) -> tf.data.Dataset:
    """One pass of (image, label[, file name]) batches in file order."""
    return classification_dataset(files, size, batch_size, with_names=with_names)
