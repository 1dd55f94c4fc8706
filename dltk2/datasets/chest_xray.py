"""Chest X-ray nodule data: labelled images, patient-level splits, balancing by flipped copies, TFRecords.

Input layout (what ``data_scripts/download_openi_chest.py`` and ``make_synthetic_chest_xray.py``
write)::

    DIR/normal/<name>.png, DIR/nodule/<name>.png    grey or colour PNG / JPEG, any size
    DIR/metadata.json                               optional: {"images": [{"name", "patient", ...}]}

A patient comes from ``metadata.json``; an image it does not list is its own patient.

:func:`prepare` splits by patient (0.7 / 0.15 / 0.15, stratified, seeded) and only then balances the
training split: the rare class gets left-right flipped copies of its own training images, so a copy
of a validation or test image can never reach training. Output: one record set
(:mod:`dltk2.io.record_set`: shards ``<name>_{train,validation,test}-*.tfrecord`` and
``<name>.manifest.json``), the flipped PNGs under ``flipped/`` and ``splits.csv`` (one row per
example written, with its split and the original it came from). Preparing again into the same
folder replaces the set in one rename.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dltk2.datasets import images2d
from dltk2.errors import DataError
from dltk2.io.atomic import write_csv_atomically
from dltk2.io.locks import locked_folder
from dltk2.io.reader import CsvError
from dltk2.io.record_set import RecordSet, manifest_path, read_record_set

CLASSES = ("normal", "nodule")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "validation", "test")


def list_labelled_images(data_dir: str | Path, classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """``name, image, text, label, patient`` of every image in the class folders.

    Raises:
        FileNotFoundError: No class folder or no images (the folder named).
        CsvError: A metadata.json that is not valid JSON or has no ``images`` list (named).
        DataError: A class folder without images (a one-class set cannot train a classifier), or the
            same image name in two class folders (named).
    """
    data_dir = Path(data_dir)
    patients: dict[str, str] = {}
    metadata = data_dir / "metadata.json"
    if metadata.exists():
        try:
            records = json.loads(metadata.read_text())["images"]
            patients = {str(r["name"]): str(r["patient"]) for r in records if r.get("patient")}
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise CsvError(f"{metadata}: not a metadata file with an 'images' list ({error})") from None
    rows = []
    for label, text in enumerate(classes):
        for path in sorted((data_dir / text).glob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rows.append({"name": path.stem, "image": str(path), "text": text, "label": label,
                             "patient": patients.get(path.stem, f"image:{path.stem}")})
    if not rows:
        raise FileNotFoundError(f"{data_dir}: no images in {', '.join(f'{c}/' for c in classes)}")
    table = pd.DataFrame(rows)
    empty = [text for text in classes if not (table["text"] == text).any()]
    if empty:
        raise DataError(f"{data_dir / empty[0]}: no images ({', '.join(IMAGE_SUFFIXES)}); a classifier needs "
                        f"images of every class ({', '.join(classes)})")
    repeated = table[table["name"].duplicated(keep=False)].sort_values("name")
    if len(repeated):
        first = repeated.iloc[0]["name"]
        folders = ", ".join(f"{text}/" for text in repeated[repeated["name"] == first]["text"])
        raise DataError(f"{data_dir}: image {first!r} is in more than one class folder ({folders}); its label is "
                        "ambiguous")
    return table


def balance_by_flipping(train: pd.DataFrame, flipped_dir: str | Path, seed: int) -> pd.DataFrame:
    """Adds left-right flipped copies of the rarer classes' images until each class nears the largest.

    Each image is flipped at most once (a class can at most double); which images are flipped is
    seeded. The copies are written as PNG to ``flipped_dir`` and keep their original's label and
    patient; column ``source`` names the original of every row (itself for an original).

    Args:
        train: The training split only (see the module docstring for why).
        flipped_dir: Where the flipped PNGs go.
        seed: Chooses which images are flipped when fewer copies than images are needed.
    """
    rng = np.random.default_rng(seed)
    train = train.assign(source=train["name"], flipped=False)
    largest = train["label"].value_counts().max()
    copies = []
    for label, rows in train.groupby("label"):
        needed = min(largest - len(rows), len(rows))
        for row in rows.iloc[rng.permutation(len(rows))[:needed]].to_dict("records"):
            image = images2d.read_png(row["image"])
            path = images2d.write_png(Path(flipped_dir) / f"{row['name']}_flipped.png", np.ascontiguousarray(image[:, ::-1]))
            copies.append({**row, "name": path.stem, "image": str(path), "flipped": True})
    return pd.concat([train, pd.DataFrame(copies, columns=train.columns)], ignore_index=True)


def fold_parts_balanced(table: pd.DataFrame, num_folds: int, test_fraction: float, seed: int, balance: bool,
                        flipped_dir: Path) -> dict[str, pd.DataFrame]:
    """A cross-validation's splits: ``test``, ``fold<k>`` and, balancing, ``flipped<k>``: fold k's copies.

    The flipped copies of a fold's images are kept apart from the fold, so that training fold j reads
    the other folds with their copies and validates on fold j's originals alone.
    """
    parts = images2d.fold_parts(table, num_folds, seed, test_fraction)
    if balance:
        for fold in range(num_folds):
            balanced = balance_by_flipping(parts[f"fold{fold}"], flipped_dir, seed + fold)
            parts[f"flipped{fold}"] = balanced[balanced["flipped"]].reset_index(drop=True)
    return parts


def prepare(data_dir: str | Path, output_dir: str | Path, fractions: Sequence[float] = (0.7, 0.15, 0.15),
            seed: int = 0, balance: bool = True, name: str = "chest", num_shards: int = 1,
            num_folds: int | None = None) -> pd.DataFrame:
    """Splits by patient, balances the training split, writes the record set and ``splits.csv``.

    With ``num_folds``, for cross-validation: a ``test`` split of ``fractions[2]`` and ``num_folds``
    folds of the rest by patient, stratified (:func:`fold_parts_balanced`; ``train.py --fold k``).

    Returns:
        The ``splits.csv`` table: ``split, name, image, text, label, patient, source, flipped``.

    Raises:
        ResourceError: Another preparation is writing into ``output_dir``.
    """
    output_dir = Path(output_dir)
    table = list_labelled_images(data_dir)
    with locked_folder(output_dir, "record set folder"):
        if num_folds:
            parts = fold_parts_balanced(table, num_folds, fractions[2], seed, balance, output_dir / "flipped")
        else:
            parts = dict(zip(SPLITS, images2d.split_by_patient(table, fractions, seed)))
            if balance:
                parts["train"] = balance_by_flipping(parts["train"], output_dir / "flipped", seed)
        written = {}
        for split, part in parts.items():
            part = part.assign(source=part.get("source", part["name"]), flipped=part.get("flipped", False))
            written[split] = part.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        splits = pd.concat([part.assign(split=split) for split, part in written.items()], ignore_index=True)[
            ["split", "name", "image", "text", "label", "patient", "source", "flipped"]]
        write_csv_atomically(splits, output_dir / "splits.csv")
        description = {"source": str(Path(data_dir).resolve()), "fractions": list(fractions), "seed": seed,
                       **({"num_folds": int(num_folds)} if num_folds else {}),
                       "balance": balance, "num_shards": num_shards, "stratified_by": "class",
                       "grouped_by": "patient", "classes": list(CLASSES)}
        companions = {split: f"fold{split[7:]}" for split in written if split.startswith("flipped")}
        images2d.write_image_record_set(written, output_dir, name, num_shards, "text", description,
                                        tables=[output_dir / "splits.csv"], companions=companions)
    return splits


def augment_radiograph(image, seed: int | None = None):
    """Training augmentation of a (size, size, 1) image in [0, 1]: left-right flip, brightness, contrast.

    Flips are label-preserving here (the balancing already relies on them); exposure changes mimic
    differing kV/mAs and processing.
    """
    import tensorflow as tf

    image = tf.image.random_flip_left_right(image, seed=seed)
    image = tf.image.random_brightness(image, 0.05, seed=seed)
    image = tf.image.random_contrast(image, 0.85, 1.15, seed=seed)
    return tf.clip_by_value(image, 0.0, 1.0)


def split_files(record_set: RecordSet, split: str) -> list[Path]:
    """The shards of one split of a record set; DataError if it has none."""
    files = record_set.files(split)
    if not files:
        raise DataError(f"{manifest_path(record_set.folder, record_set.name)}: the record set has no {split} images "
                        "(run prepare.py with a larger fraction)")
    return files


def tfrecord_files(data_dir: str | Path, split: str, name: str = "chest") -> list[Path]:
    """The shards of one split of the record set ``name`` in ``data_dir``, checked against its manifest.

    Raises:
        DataError: No manifest (run prepare.py), shards that do not match it, or no such split.
    """
    return split_files(read_record_set(data_dir, name), split)


def training_dataset(files, size: int, batch_size: int, weights: np.ndarray | None, seed: int):
    """Endless shuffled batches of (image, label, weight) with flips, brightness and contrast.

    Images are min-max scaled and padded to the model's square size by
    :func:`dltk2.inference.grey_image_input`, the same function inside the exported serving signature.
    """
    return images2d.classification_dataset(files, size, batch_size, weights, training=True, seed=seed,
                                  augment=lambda image: augment_radiograph(image, seed))


def evaluation_dataset(files, size: int, batch_size: int, with_names: bool = False):
    """One pass of (image, label[, file name]) batches in file order."""
    return images2d.classification_dataset(files, size, batch_size, with_names=with_names)
