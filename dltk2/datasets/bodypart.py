"""The DICOM body-part classification data: fetched PNGs, patient-level splits, TFRecords, model input.

A dataset folder (what ``fetch_image.py`` and ``preprocess_image.py`` write) holds
``images/<name>.png`` (8- or 16-bit grey, lossless), ``labels/<name>.txt`` (the class text) and
``index.csv`` (``name,body_part,patient``: the patient pseudonym, for splitting by patient).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf

from dltk2.inference import grey_image_input
from dltk2.io.atomic import write_bytes_atomically
from dltk2.io.dicom import BODY_PART_CLASSES, deidentify, read_pixels, remove_pixel_data, to_unsigned
from dltk2.io.tfrecord import image_dataset, image_example, write_shards

CLASSES = BODY_PART_CLASSES
CLASS_INDEX = {name: index for index, name in enumerate(CLASSES)}


def representative_image(pixels: np.ndarray, colour: bool | None = None) -> np.ndarray:
    """One (height, width) grey image: the middle frame of a multi-frame image, luminance of colour.

    Args:
        pixels: (h, w), (frames, h, w), (h, w, 3) or (frames, h, w, 3), as :func:`read_pixels` gives.
        colour: Whether the last axis is RGB (e.g. ``PhotometricInterpretation`` not MONOCHROME);
            None guesses from a last axis of 3.
    """
    if colour is None:
        colour = pixels.ndim >= 3 and pixels.shape[-1] == 3
    if pixels.ndim == (4 if colour else 3):
        pixels = pixels[pixels.shape[0] // 2]
    if colour:  # RGB -> luminance (ITU-R BT.601)
        pixels = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    return pixels


def grey_image_from_dicom(dataset, path: str | Path = "<dataset>") -> np.ndarray:
    """The (height, width) float32 grey image of a DICOM dataset (see :func:`representative_image`)."""
    colour = not str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper().startswith("MONOCHROME")
    return representative_image(read_pixels(dataset, path), colour)


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
    """Reads a grey PNG unchanged (uint8 or uint16)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"{path}: not a readable image")
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def export_image(dataset, name: str, body_part: str, patient: str, output_dir: str | Path, bits: int = 8,
                 metadata_salt: str | None = None) -> dict:
    """Writes ``images/<name>.png``, ``labels/<name>.txt`` and, with a salt, de-identified ``metadata/<name>.json``.

    Returns:
        The ``index.csv`` row: ``name, body_part, patient``.
    """
    output_dir = Path(output_dir)
    image = to_unsigned(grey_image_from_dicom(dataset, name), bits)
    write_png(output_dir / "images" / f"{name}.png", image)
    write_bytes_atomically(output_dir / "labels" / f"{name}.txt", f"{body_part}\n".encode())
    if metadata_salt is not None:
        clean = remove_pixel_data(deidentify(dataset, metadata_salt))
        write_bytes_atomically(output_dir / "metadata" / f"{name}.json",
                               json.dumps(clean.to_json_dict(), indent=1, sort_keys=True).encode())
    return {"name": name, "body_part": body_part, "patient": patient}


def write_index(rows: Sequence[dict], output_dir: str | Path) -> Path:
    """Writes (or extends, without duplicates) ``index.csv`` atomically."""
    path = Path(output_dir) / "index.csv"
    table = pd.DataFrame(rows, columns=["name", "body_part", "patient"])
    if path.exists():
        table = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False), table])
    table = table.drop_duplicates("name", keep="last").sort_values("name")
    write_bytes_atomically(path, table.to_csv(index=False).encode())
    return path


def list_dataset(dataset_dir: str | Path, images_subdir: str = "images") -> pd.DataFrame:
    """``name, image, body_part, label, patient`` of every image with a label file.

    The patient comes from ``index.csv``; an image missing from it is its own patient.

    Raises:
        FileNotFoundError: No images, or an image without its label file (named).
        ValueError: A label text that is not one of :data:`CLASSES` (file named).
    """
    dataset_dir = Path(dataset_dir)
    images = sorted((dataset_dir / images_subdir).glob("*.png"))
    if not images:
        raise FileNotFoundError(f"{dataset_dir / images_subdir}: no .png images")
    index_path = dataset_dir / "index.csv"
    patients = {}
    if index_path.exists():
        index = pd.read_csv(index_path, dtype=str, keep_default_na=False)
        patients = dict(zip(index["name"], index["patient"]))
    rows = []
    for image in images:
        label_file = dataset_dir / "labels" / f"{image.stem}.txt"
        if not label_file.exists():
            raise FileNotFoundError(f"{label_file}: no such file (the label of {image.name})")
        text = label_file.read_text().strip()
        if text not in CLASS_INDEX:
            raise ValueError(f"{label_file}: {text!r} is not one of {', '.join(CLASSES)}")
        rows.append({"name": image.stem, "image": str(image), "body_part": text, "label": CLASS_INDEX[text],
                     "patient": patients.get(image.stem) or f"image:{image.stem}"})
    return pd.DataFrame(rows)


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


def encode_png(path: str | Path) -> tuple[bytes, int, int]:
    """The PNG file's bytes, height and width."""
    data = Path(path).read_bytes()
    image = read_png(path)
    return data, int(image.shape[0]), int(image.shape[1])


def convert_split(table: pd.DataFrame, output_dir: str | Path, name: str, num_shards: int = 1) -> list[Path]:
    """Writes one split's images (PNG bytes as stored) to TFRecord shards."""
    examples = []
    for row in table.itertuples():
        data, height, width = encode_png(row.image)
        examples.append(image_example(data, "png", height, width, 1, row.label, row.body_part,
                                      Path(row.image).name, row.patient))
    return write_shards(examples, output_dir, name, num_shards)


def class_weights(labels: Sequence[int], num_classes: int = len(CLASSES)) -> np.ndarray:
    """``n / (classes present * n_c)`` per class (scikit-learn's "balanced"); 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def classification_dataset(files, size: int, batch_size: int, weights: np.ndarray | None = None,
                           training: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Batches of ``(image (size, size, 1), label[, weight])`` from TFRecord shards."""
    dataset = image_dataset(files, channels=1, dtype=tf.uint16)
    table = None if weights is None else tf.constant(weights, tf.float32)

    def to_example(features):
        image = grey_image_input(features["image"], size)
        if training:
            image = tf.image.random_brightness(image, 0.05, seed=seed)
        label = tf.cast(features["image/class/label"], tf.int32)
        if table is None:
            return image, label
        return image, label, tf.gather(table, label)

    if training:
        dataset = dataset.shuffle(512, seed=seed, reshuffle_each_iteration=True).repeat()
    return dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
