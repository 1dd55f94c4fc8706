"""Labelled 2D image sets: lossless PNG I/O, patient-level splits, class weights, TFRecords, tf.data input.

Shared by the 2D applications (DICOM body part, chest X-ray). A data set is a table (pandas) with one
row per image: ``image`` (a PNG path), ``label`` (int class index), a text column (the class name) and
``patient`` (so that no patient's images land in two splits).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from dltk2.errors import DataError
from dltk2.io.image import ImageReadError
from dltk2.io.atomic import write_bytes_atomically

if TYPE_CHECKING:  # TensorFlow is imported by what writes or reads records, not by PNG and table work
    import tensorflow as tf

    from dltk2.io.record_set import RecordSet


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Writes a uint8 or uint16 (height, width) image as PNG (lossless), atomically."""
    path = Path(path)
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: PNG needs uint8 or uint16, got {image.dtype}")
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes_atomically(path, encoded.tobytes())
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Reads an image file as grey, unchanged in depth (uint8 or uint16); colour becomes luminance.

    Raises:
        ImageReadError: A missing, truncated or undecodable file (named); an ``OSError``.
    """
    if not Path(path).is_file():
        raise ImageReadError(f"{path}: no such file")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (truncated or not an image)")
    if image.ndim == 3 and image.shape[-1] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def encode_png(path: str | Path) -> tuple[bytes, int, int]:
    """The PNG file's bytes, height and width (the file is decoded once, to check it)."""
    data = Path(path).read_bytes()
    image = read_png(path)
    return data, int(image.shape[0]), int(image.shape[1])


def split_by_patient(table: pd.DataFrame, fractions: Sequence[float], seed: int) -> list[pd.DataFrame]:
    """Splits images into parts of about ``fractions`` of each class, no patient in two parts.

    Patients are taken in a seeded random order, largest first, and each goes to the part that is
    furthest below its share of the patient's classes (a greedy stratified group split).

    Args:
        table: Rows with ``label`` and ``patient``.
        fractions: One per part, summing to 1 (e.g. ``(0.7, 0.15, 0.15)``).
        seed: The shuffle's seed.
    """
    fractions = np.asarray(fractions, np.float64)
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    totals = table["label"].value_counts()
    counts = {part: {} for part in range(len(fractions))}
    assignment = {}
    groups = list(table.groupby("patient"))
    order = rng.permutation(len(groups))
    order = sorted(order, key=lambda i: -len(groups[i][1]))  # stable: random among equal sizes
    for i in order:
        patient, rows = groups[i]
        labels = rows["label"].value_counts()
        deficits = []
        for part, fraction in enumerate(fractions):
            deficit = sum(n * (fraction * totals[c] - counts[part].get(c, 0)) / totals[c] for c, n in labels.items())
            deficits.append(deficit if fraction > 0 else -np.inf)
        part = int(np.argmax(deficits))
        assignment[patient] = part
        for c, n in labels.items():
            counts[part][c] = counts[part].get(c, 0) + n
    parts = table["patient"].map(assignment)
    return [table[parts == part].reset_index(drop=True) for part in range(len(fractions))]


FOLD_SPLIT = re.compile(r"^fold(\d+)$")


def fold_parts(table: pd.DataFrame, num_folds: int, seed: int, test_fraction: float = 0.0) -> dict[str, pd.DataFrame]:
    """A cross-validation's splits of an image table: ``test`` (if any) and ``fold0`` .. ``fold<k-1>``.

    The test images are split off first (:func:`split_by_patient`), then the rest is divided into
    ``num_folds`` folds by patient, stratified by class (:func:`dltk2.cross_validation.assign_folds`).
    Training fold k then reads every other fold, and validates on fold k (:func:`fold_files`).

    Raises:
        DataError: Fewer patients than folds.
    """
    from dltk2.cross_validation import assign_folds

    parts: dict[str, pd.DataFrame] = {}
    rest = table.reset_index(drop=True)
    if test_fraction > 0:
        rest, parts["test"] = split_by_patient(rest, [1 - test_fraction, test_fraction], seed)
    folds = assign_folds(rest["patient"], num_folds, rest["label"], seed)
    for fold in range(num_folds):
        parts[f"fold{fold}"] = rest[folds == fold].reset_index(drop=True)
    return parts


def fold_count(record_set: RecordSet) -> int:
    """How many ``fold<k>`` splits a record set holds (0: it was not converted for cross-validation)."""
    return sum(1 for split in record_set.splits if FOLD_SPLIT.match(split))


def fold_files(record_set: RecordSet, fold: int | None) -> tuple[list[Path], list[Path], dict[int, int]]:
    """Training shards, validation shards and the training images per class, of a split or a fold.

    Args:
        record_set: The converted images.
        fold: None: the ``train`` and ``validation`` splits. k: every fold but k (with its
            ``flipped<j>`` balancing copies, if the conversion made them) for training, fold k,
            originals only, for validation.

    Raises:
        DataError: No train split (without a fold), a fold asked of a set without folds, or one beyond
            its folds; named.
    """
    from dltk2.io.record_set import manifest_path

    where = manifest_path(record_set.folder, record_set.name)
    if fold is None:
        if not record_set.files("train"):
            raise DataError(f"{where}: the record set has no train split (convert it with one, or into folds "
                            "and train --fold k)")
        return record_set.files("train"), record_set.files("validation"), record_set.label_counts("train")
    folds = fold_count(record_set)
    if folds == 0:
        raise DataError(f"{where}: the record set has no folds (convert it into folds to train --fold)")
    if not 0 <= fold < folds:
        raise DataError(f"{where}: the record set has folds 0..{folds - 1}, not {fold}")
    training = [split for other in range(folds) if other != fold for split in (f"fold{other}", f"flipped{other}")
                if split in record_set.splits]
    counts: dict[int, int] = {}
    for split in training:
        for label, count in record_set.label_counts(split).items():
            counts[label] = counts.get(label, 0) + count
    return [f for split in training for f in record_set.files(split)], record_set.files(f"fold{fold}"), counts


def fold_of_record_set(record_set: RecordSet, fold: int | None) -> dict:
    """What a fold's ``run_config.json`` records of its cross-validation (nothing without a fold)."""
    if fold is None:
        return {}
    return {"fold": int(fold), "num_folds": fold_count(record_set),
            "fold_seed": record_set.manifest.get("description", {}).get("seed")}


def image_examples(table: pd.DataFrame, text_column: str = "text") -> list:
    """One TFRecord example per row (``image``, ``label``, the class text, ``patient``): the PNG bytes as stored."""
    from dltk2.io import tfrecord

    examples = []
    for row in table.to_dict("records"):
        data, height, width = encode_png(row["image"])
        examples.append(tfrecord.image_example(data, "png", height, width, 1, int(row["label"]),
                                               str(row[text_column]), Path(row["image"]).name, str(row["patient"])))
    return examples


def write_image_record_set(parts: Mapping[str, pd.DataFrame], output_dir: str | Path, name: str,
                           num_shards: int = 1, text_column: str = "text", description: Mapping | None = None,
                           tables: Sequence[str | Path] = (), companions: Mapping[str, str] | None = None
                           ) -> RecordSet:
    """Writes the splits' images as one record set (:func:`dltk2.io.record_set.write_record_set`).

    Args:
        parts: Split name -> its rows, in the order to write (``""``: a set without splits).
        output_dir: The folder of the set.
        name: The set's name (shards ``<name>_<split>-*.tfrecord``, manifest ``<name>.manifest.json``).
        num_shards: Shards per split.
        text_column: The column holding the class text.
        description: What made the split, kept in the manifest.
        tables: Tables written beside the set (``split.csv``), tied to it by their SHA-256.
        companions: Split -> the split whose patients it shares (``flipped<k>`` -> ``fold<k>``).
    """
    from dltk2.io.record_set import write_record_set

    return write_record_set(output_dir, name,
                            {split: functools.partial(image_examples, table, text_column)
                             for split, table in parts.items()},
                            num_shards, description, tables, companions)


def class_coverage(counts: Mapping[int, int], classes: Sequence[str], what: str) -> str | None:
    """A one-line warning when ``counts`` (class index -> examples) leave classes out, else None.

    A body-part data set fetched with one ``--query`` holds one of the seven classes; trained on, it
    gives a classifier that can only answer that class, and its accuracy says nothing.
    """
    present = {index: count for index, count in counts.items() if count > 0}
    if len(present) == len(classes):
        return None
    absent = [name for index, name in enumerate(classes) if index not in present]
    held = ", ".join(f"{classes[index]}: {count}" for index, count in sorted(present.items()))
    return (f"{what} hold {len(present)} of {len(classes)} classes ({held}); none of {', '.join(absent)}"
            + ("; a classifier trained on them can answer only that class" if len(present) == 1 else ""))


def class_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """``n / (classes present * n_c)`` per class (scikit-learn's "balanced"); 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def classification_dataset(files, size: int, batch_size: int, weights: np.ndarray | None = None,
                           training: bool = False, seed: int | None = None,
                           augment: Callable[[tf.Tensor], tf.Tensor] | None = None,
                           with_names: bool = False) -> tf.data.Dataset:
    """Batches of ``(image (size, size, 1) float32 in [0, 1], label[, weight])`` from TFRecord shards.

    Images are min-max scaled and padded to ``size`` by :func:`dltk2.inference.grey_image_input`, the
    function the exported serving signatures apply, so training and serving see the same input.

    Args:
        files: Shard paths or a glob pattern.
        size: Square input size in pixels.
        batch_size: Batch size.
        weights: Per-class sample weights (see :func:`class_weights`); adds a third element.
        training: Shuffle and repeat forever, and apply ``augment``.
        seed: Shuffle (and augmentation) seed.
        augment: (size, size, 1) -> (size, size, 1), in training only; None: a small random brightness.
        with_names: Adds ``image/filename`` as the last element (for evaluation tables).
    """
    import tensorflow as tf

    from dltk2.inference import grey_image_input
    from dltk2.io.pipeline import with_pipeline_options
    from dltk2.io.tfrecord import image_dataset

    dataset = image_dataset(files, channels=1, dtype=tf.uint16)
    table = None if weights is None else tf.constant(weights, tf.float32)
    if augment is None:
        def augment(image):
            return tf.image.random_brightness(image, 0.05, seed=seed)

    def to_example(features):
        image = grey_image_input(features["image"], size)
        if training:
            image = augment(image)
        label = tf.cast(features["image/class/label"], tf.int32)
        example = (image, label) if table is None else (image, label, tf.gather(table, label))
        return example + (features["image/filename"],) if with_names else example

    if training:
        dataset = dataset.shuffle(512, seed=seed, reshuffle_each_iteration=True).repeat()
    return with_pipeline_options(dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
                                 .prefetch(2))
