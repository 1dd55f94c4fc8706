"""The DICOM body-part classification data: fetched PNGs, patient-level splits, TFRecords, model input.

A dataset folder (what ``fetch_image.py`` and ``preprocess_image.py`` write) holds
``images/<name>.png`` (8- or 16-bit grey, lossless), ``labels/<name>.txt`` (the class text) and
``index.csv`` (``name,body_part,patient``: the patient pseudonym, for splitting by patient).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

from dltk2.datasets import images2d
from dltk2.datasets.images2d import classification_dataset, fold_parts, read_png, split_by_patient, write_png
from dltk2.io.atomic import write_bytes_atomically
from dltk2.io.dicom import BODY_PART_CLASSES, read_pixels, remove_pixel_data, to_unsigned

if TYPE_CHECKING:
    from dltk2.io.record_set import RecordSet

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


def export_image(dataset, name: str, body_part: str, patient: str, output_dir: str | Path, bits: int = 8,
                 metadata=None) -> dict:
    """Writes ``images/<name>.png``, ``labels/<name>.txt`` and, given a header, ``metadata/<name>.json``.

    Args:
        dataset: The DICOM dataset whose pixels are written.
        name, body_part, patient: Its pseudonymous name, class text and patient pseudonym.
        output_dir: The dataset folder.
        bits: PNG depth, 8 or 16.
        metadata: The header to write as JSON, already de-identified
            (:func:`dltk2.io.deidentification.deidentify`); its pixel data are left out. None: no JSON.

    Returns:
        The ``index.csv`` row: ``name, body_part, patient``.
    """
    output_dir = Path(output_dir)
    image = to_unsigned(grey_image_from_dicom(dataset, name), bits)
    write_png(output_dir / "images" / f"{name}.png", image)
    write_bytes_atomically(output_dir / "labels" / f"{name}.txt", f"{body_part}\n".encode())
    if metadata is not None:
        clean = remove_pixel_data(copy.deepcopy(metadata))
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


def write_record_set(parts: Mapping[str, pd.DataFrame], output_dir: str | Path, name: str, num_shards: int = 1,
                     description: Mapping | None = None, tables: Sequence[str | Path] = ()) -> RecordSet:
    """Writes the splits of :func:`list_dataset`'s table as one record set (class text: the body part).

    See :func:`dltk2.datasets.images2d.write_image_record_set`.
    """
    return images2d.write_image_record_set(parts, output_dir, name, num_shards, "body_part", description, tables)


def class_weights(labels: Sequence[int], num_classes: int = len(CLASSES)) -> np.ndarray:
    """:func:`dltk2.datasets.images2d.class_weights` over the 7 body-part classes."""
    return images2d.class_weights(labels, num_classes)


__all__ = ["CLASSES", "CLASS_INDEX", "class_weights", "classification_dataset", "export_image",
           "fold_parts", "grey_image_from_dicom", "list_dataset", "read_png", "representative_image", "split_by_patient",
           "write_index", "write_png", "write_record_set"]
