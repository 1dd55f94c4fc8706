"""Reading MRNet exams for training and evaluation: the exam tables and the tf.data input.

Exams come from MRNet's layout (``--data_dir`` with ``train/<plane>/*.npy`` and ``train-<task>.csv``)
or from a CSV of ``path,label`` rows (``--exam_list``). The reading itself (numpy series through
``tf.py_function``, resampling and whitening in the graph) is :mod:`dltk2.datasets.mrnet`; the
training batches are augmented by :func:`dltk2.batch_augmentation.augment_volume_batch`.
"""

from __future__ import annotations

import functools

import pandas as pd
import tensorflow as tf

from dltk2.batch_augmentation import augment_volume_batch
from dltk2.datasets import mrnet


def load_exams(data_dir: str | None, exam_list: str | None, split: str, task: str, plane: str) -> pd.DataFrame:
    """Rows ``id, path, label`` of MRNet's ``split`` (``train`` / ``valid``), or of an exam list CSV."""
    if exam_list:
        return mrnet.load_exam_list(exam_list)
    if not data_dir:
        raise ValueError("give --data_dir (MRNet's layout) or --exam_list (a CSV of path,label)")
    return mrnet.load_exams(data_dir, split, task, plane)


def training_dataset(exams: pd.DataFrame, depth: int, size: int, batch_size: int, seed: int, augment: bool,
                     cache: bool) -> tf.data.Dataset:
    """Endless shuffled, augmented batches of (series, label) from the (oversampled) training rows."""
    augmentation = functools.partial(augment_volume_batch, seed=seed) if augment else None
    return mrnet.series_dataset(exams, depth, size, batch_size, training=True, seed=seed, augment=augmentation,
                                cache=cache)


def evaluation_dataset(exams: pd.DataFrame, depth: int, size: int, batch_size: int, cache: bool = False,
                       with_ids: bool = False) -> tf.data.Dataset:
    """One pass of (series, label[, id]) batches in order."""
    return mrnet.series_dataset(exams, depth, size, batch_size, cache=cache, with_ids=with_ids)
