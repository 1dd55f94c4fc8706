"""IXI T1 boxes in [-1, 1] for a generative model: the DCGAN application's reader.

Each subject's T1 is scaled from [0, its 99.5th percentile] to [-1, 1] (clipped: a generator's
``tanh`` reaches no further), and the box of ``example_size`` at the volume's centre
(:func:`dltk2.datasets.ixi_sequences.central_box`) is the example; in training it moves by up to
``max_shift`` voxels and flips left-right at random.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from dltk2.augmentation import flip
from dltk2.datasets.ixi_sequences import central_box
from dltk2.io.image import read_voxels
from dltk2.io.reader import Mode


def scaled_to_one_one(volume: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """``volume`` (float32) from [0, its ``percentile``] to [-1, 1], clipped; background (0) goes to -1."""
    volume = np.asarray(volume, np.float32)
    top = float(np.percentile(volume, percentile)) or 1.0
    return np.clip(volume / top * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)


def read_box(path: str, example_size: Sequence[int], shift: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """One subject's box, (z, y, x, 1) in [-1, 1]; outside the volume -1 (background)."""
    volume = scaled_to_one_one(read_voxels(path))[..., np.newaxis]
    return central_box(volume + 1.0, example_size, shift) - 1.0  # pad with background, not mid-grey


def read_fn(file_reference: Sequence[str], mode: Mode, params: Mapping[str, Any]) -> Iterator[dict]:
    """Yields each subject's box (``features``; a placeholder label: the model is unsupervised).

    Args:
        file_reference: ``(id, T1 path, ...)`` as :func:`dltk2.datasets.ixi.load_subjects` gives.
        params: ``example_size`` (z, y, x), ``max_shift`` (voxels).
    """
    if mode == Mode.TRAIN:
        rng = np.random.default_rng()
        reach = int(params.get("max_shift", 1))
        shift = rng.integers(-reach, reach + 1, size=3)
        (box,) = flip([read_box(file_reference[1], params["example_size"], shift)], axis=2, rng=rng)
    else:
        box = read_box(file_reference[1], params["example_size"])
    yield {"features": {"x": box}, "labels": {"y": np.float32(0.0)}}
