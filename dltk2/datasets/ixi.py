"""The IXI_HH data set as ``download_IXI_HH.py`` (real) and ``make_synthetic_ixi.py`` write it.

Layout: ``<data_dir>/demographic_HH.csv`` with IXI's columns, and ``<data_dir>/<s>mm/<ID>/T1_<s>mm.nii.gz``.
Both IXI applications (sex classification, age regression) read it through :func:`read_fn`.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from dltk2.augmentation import flip
from dltk2.io.image import read_voxels
from dltk2.errors import DataError
from dltk2.io.paths import check_name
from dltk2.io.reader import CsvError, Mode, Reader, read_csv_columns
from dltk2.preprocessing import whitening
from dltk2.sampling import extract_random_example_array
from dltk2.volume_sampling import cached_volume_dataset, random_crop_training_dataset

ID_COLUMN = "IXI_ID"
SEX_COLUMN = "SEX_ID (1=m, 2=f)"
AGE_COLUMN = "AGE"
TARGETS = {"sex": SEX_COLUMN, "age": AGE_COLUMN}


def t1_path(data_dir: str | Path, subject_id: str, spacing_mm: float) -> Path:
    """``<data_dir>/<s>mm/<ID>/T1_<s>mm.nii.gz``."""
    return sequence_path(data_dir, subject_id, "T1", spacing_mm)


def sequence_path(data_dir: str | Path, subject_id: str, sequence: str, spacing_mm: float) -> Path:
    """``<data_dir>/<s>mm/<ID>/<sequence>_<s>mm.nii.gz`` (IXI's T1, T2 and PD)."""
    label = f"{spacing_mm:g}mm"
    return Path(data_dir) / label / subject_id / f"{sequence}_{label}.nii.gz"


def load_subjects(
    csv_path: str | Path, target: str, spacing_mm: float = 2.0, data_dir: str | Path | None = None
) -> pd.DataFrame:
    """Reads the demographics CSV into the rows the reader takes.

    Args:
        csv_path: ``demographic_HH.csv``.
        target: ``"sex"`` (label ``SEX_ID - 1``: 0 male, 1 female) or ``"age"`` (years).
        spacing_mm: Which resampled images to use.
        data_dir: Folder holding the ``<s>mm`` folders; default: the CSV's folder.

    Returns:
        DataFrame with columns ``id``, ``image``, ``label`` (strings), in the CSV's order. Subjects
        whose target is empty are dropped (IXI has a few without age).

    Raises:
        CsvError: The CSV lacks ``IXI_ID`` or the target's column, or a target value is not a sex code
            (1, 2) or an age in years.
        DataError: A subject id that is not a plain name (it would name a file outside the data folder).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, got {target!r}")
    column = TARGETS[target]
    table = read_csv_columns(csv_path, [ID_COLUMN, column])
    table = table[table[column].notna() & (table[column].str.strip() != "")]
    data_dir = Path(data_dir) if data_dir is not None else Path(csv_path).parent
    values = pd.to_numeric(table[column], errors="coerce")
    allowed = values.isin([1, 2]) if target == "sex" else values.between(0, 130)
    if not allowed.all():
        row = int(np.flatnonzero(~allowed.to_numpy())[0])
        expected = "1 (male) or 2 (female)" if target == "sex" else "an age in years (0-130)"
        raise CsvError(f"{csv_path}: column {column!r} must hold {expected}; subject "
                       f"{table[ID_COLUMN].iloc[row]!r} has {table[column].iloc[row]!r}")
    labels = (values.astype(int) - 1).astype(str) if target == "sex" else values.map(lambda v: f"{v:.6f}")
    subjects = [check_name(subject, str(csv_path), "subject id") for subject in table[ID_COLUMN].fillna("")]
    images = [t1_path(data_dir, subject, spacing_mm) for subject in subjects]
    missing = [path for path in images if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such file ({len(missing)} of {len(images)} subjects of "
                                f"{csv_path} lack their {spacing_mm:g} mm T1)")
    return pd.DataFrame({"id": subjects, "image": [str(path) for path in images], "label": labels.values})


def split_subjects(subjects: pd.DataFrame, num_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DLTK's split: the first ``num_train`` rows train, the rest validate."""
    if not 0 < num_train < len(subjects):
        raise DataError(f"num_train={num_train} leaves no training or no validation subject of the {len(subjects)} "
                        "in the CSV")
    return subjects.iloc[:num_train].reset_index(drop=True), subjects.iloc[num_train:].reset_index(drop=True)


def load_split(csv_path: str | Path, spacing_mm: float, num_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(training, held-out)`` subjects of ``demographic_HH.csv`` with their T1s (:func:`load_subjects` with
    the sex column, which every IXI subject has), DLTK's split by order (:func:`split_subjects`): what the
    unsupervised applications (super-resolution, the GAN) train and score on."""
    return split_subjects(load_subjects(csv_path, "sex", spacing_mm), num_train)


def split_fold(subjects: pd.DataFrame, target: str, fold: int, num_folds: int, seed: int = 0
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fold ``fold`` of ``num_folds`` by subject (:func:`dltk2.cross_validation.fold_split`); stratified by sex."""
    from dltk2.cross_validation import fold_split

    training, validation = fold_split(subjects, fold, num_folds, "id", "label" if target == "sex" else None, seed)
    return training.reset_index(drop=True), validation.reset_index(drop=True)


def split_of_run(subjects: pd.DataFrame, target: str, data: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and validation subjects a run used, from its run configuration's ``data``."""
    if data.get("fold") is not None:
        return split_fold(subjects, target, int(data["fold"]), int(data["num_folds"]), int(data.get("fold_seed", 0)))
    return split_subjects(subjects, int(data["num_train"]))


def read_fn(file_reference: Sequence[str], mode: Mode, params: Mapping[str, Any]) -> Iterator[dict]:
    """Reads one subject's T1 volume and yields examples.

    TRAIN: whitening, a random left-right flip, ``n_examples`` random crops of ``example_size``.
    EVAL: the same crops without flip, at positions fixed per subject (a stable validation score).
    PREDICT: the raw volume (z, y, x); whitening and crops happen in
    :class:`dltk2.inference.CropAveragingPredictor`, the graph that is also exported for serving.

    Args:
        file_reference: ``(id, image_path, label)`` as :func:`load_subjects` gives.
        mode: The reader's mode.
        params: ``example_size`` (z, y, x), ``n_examples``, ``target`` (``"sex"`` or ``"age"``).
    """
    subject_id, image_path = file_reference[:2]
    if mode == Mode.PREDICT:
        yield {"features": {"x": read_voxels(image_path)}}
        return
    image, value = load_whitened_volume(file_reference, params.get("target", "sex"))
    if mode == Mode.TRAIN:
        rng = np.random.default_rng()
        (image,) = flip([image], axis=2, rng=rng)
    else:
        rng = np.random.default_rng(zlib.crc32(subject_id.encode()))
    (crops,) = extract_random_example_array(image, params["example_size"], params["n_examples"], rng=rng)
    for crop in crops:
        yield {"features": {"x": crop}, "labels": {"y": value}}


def load_whitened_volume(file_reference: Sequence[str], target: str = "sex") -> tuple[np.ndarray, np.ndarray]:
    """The deterministic part of :func:`read_fn` in TRAIN and EVAL mode: the whitened volume and the label.

    Returns:
        ``(volume (z, y, x, 1) float32, label)``: int32 for ``"sex"``, float32 (1,) for ``"age"``.
    """
    _, image_path, label = file_reference[:3]
    volume = whitening(read_voxels(image_path))[..., np.newaxis]
    return volume, (np.int32(int(label)) if target == "sex" else np.array([float(label)], np.float32))


def cached_training_dataset(
    subjects: pd.DataFrame, example_size: Sequence[int], n_examples: int, target: str, batch_size: int,
    shuffle_buffer_size: int = 64, seed: int | None = None,
) -> tf.data.Dataset:
    """TRAIN batches as :func:`build_reader` gives them, with the whitened volumes kept in memory.

    Each file is read and whitened once; flips and crops are TensorFlow ops on the cached volumes
    (:mod:`dltk2.volume_sampling`). Needs 4 bytes per voxel per subject: about 4.3 MB at 2 mm.

    Args:
        subjects: Rows as :func:`load_subjects` gives them.
        example_size: (z, y, x) crop size.
        n_examples: Crops per volume per pass.
        target: ``"sex"`` or ``"age"``.
        batch_size: Examples per batch.
    """
    rows = subjects[["id", "image", "label"]].astype(str).values.tolist()
    label_dtype, label_shape = (tf.int32, []) if target == "sex" else (tf.float32, [1])
    volumes = cached_volume_dataset(rows, lambda row: load_whitened_volume(row, target), label_dtype, label_shape)
    return random_crop_training_dataset(volumes, example_size, n_examples, batch_size, flip_axis=2,
                                        shuffle_buffer_size=shuffle_buffer_size, seed=seed)


def build_reader(example_size: Sequence[int], target: str) -> Reader:
    """A :class:`Reader` over :func:`read_fn` with the example shapes of ``target``."""
    label_dtype, label_shape = (tf.int32, []) if target == "sex" else (tf.float32, [1])
    return Reader(
        read_fn,
        dtypes={"features": {"x": tf.float32}, "labels": {"y": label_dtype}},
        shapes={"features": {"x": list(example_size) + [1]}, "labels": {"y": label_shape}},
    )
