"""Checks of a trained classifier that catch what its metrics hide.

A classifier whose every input gets the same output reports a plausible accuracy (the share of its
one class) and trains on without a word; the body-part classifier did exactly that with batch-norm
statistics left from random weights. :func:`warn_if_constant` says so in one line at the end of
training.
"""

from __future__ import annotations

import keras
import numpy as np

# Across images, the largest standard deviation of any class probability below which the outputs
# count as constant. A MobileNet with stale batch-norm statistics gave 1.3e-7; the same model with
# re-estimated statistics 0.38.
CONSTANT_SPREAD = 1e-4


def prediction_spread(model: keras.Model, dataset, batches: int = 8) -> tuple[float, int]:
    """The largest standard deviation across images of any output's softmax, and the images seen.

    Args:
        model: Outputs logits (batch, classes).
        dataset: Batches of images, or of (images, labels[, weights]) tuples.
        batches: At most this many batches.
    """
    outputs = []
    for number, batch in enumerate(dataset):
        if number >= batches:
            break
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        logits = keras.ops.convert_to_numpy(model(images, training=False)).astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        probabilities = np.exp(logits)
        outputs.append(probabilities / probabilities.sum(axis=-1, keepdims=True))
    if not outputs:
        return float("nan"), 0
    stacked = np.concatenate(outputs)
    return float(stacked.std(axis=0).max()), len(stacked)


def warn_if_constant(model: keras.Model, dataset, what: str = "validation", batches: int = 8) -> bool:
    """Prints a warning when the model gives (nearly) the same probabilities to every image.

    Returns:
        True when the outputs were constant (and the warning printed).
    """
    spread, seen = prediction_spread(model, dataset, batches)
    if seen < 2 or not spread < CONSTANT_SPREAD:
        return False
    print(f"warning: the trained model gives the same probabilities to all {seen} {what} images "
          f"(largest spread across images {spread:.1e}): it has learnt nothing it can use. With batch "
          "normalisation, re-estimate its statistics on training images (--batch_norm_batches); else "
          "train longer or from other weights", flush=True)
    return True
