"""MRBrainS13 brain tissue segmentation: subject folders of three co-registered MR sequences, and the read_fn.

MRBrainS13's layout (``TrainingData/<n>/``, as ``make_synthetic_mrbrains.py`` also writes it):
``T1.nii``, ``T1_IR.nii`` and ``T2_FLAIR.nii`` on one grid (``.nii.gz`` too) and ``LabelsForTesting.nii``,
the challenge's three evaluated tissues: 0 background, 1 cerebrospinal fluid (ventricles included),
2 grey matter (cortex and basal ganglia), 3 white matter (lesions included). DLTK's CSVs list the
folders: ``id,subj_folder``. MR intensities have no units, so each channel is whitened over its
volume (zero mean, unit standard deviation), in the reader and in the served graph alike.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from dltk2.augmentation import add_gaussian_noise, add_gaussian_offset, flip
from dltk2.errors import DataError
from dltk2.io.image import read_voxels
from dltk2.io.reader import Mode
from dltk2.preprocessing import read_whitened_channels
from dltk2.sampling import extract_class_balanced_example_array

CHANNELS = ("T1", "T1_IR", "T2_FLAIR")
LABEL_FILE = "LabelsForTesting"
TISSUES = {1: "csf", 2: "grey_matter", 3: "white_matter"}
NUM_CLASSES = 4


def _file(folder: Path, name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if (folder / f"{name}{suffix}").exists():
            return str(folder / f"{name}{suffix}")
    raise DataError(f"{folder}: no {name}.nii or {name}.nii.gz (a subject folder holds "
                    f"{', '.join(CHANNELS)} and {LABEL_FILE})")


def subject_files(folder: str | Path, with_labels: bool = True) -> dict[str, Any]:
    """``{"image": [T1, T1_IR, T2_FLAIR paths], "label": path or ""}`` of one subject folder.

    Raises:
        DataError: A missing folder or file, named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such subject folder")
    return {"image": [_file(folder, name) for name in CHANNELS],
            "label": _file(folder, LABEL_FILE) if with_labels else ""}


def read_cases(csv_path: str | Path, with_labels: bool = True) -> list[dict[str, Any]]:
    """Every subject of a CSV of ``id,subj_folder`` as ``{"id", "image": [3 paths], "label"}``.

    Raises:
        CsvError: A missing column; DataError: a missing folder or file (named).
    """
    from dltk2.io.reader import read_csv_columns

    table = read_csv_columns(csv_path, ["id", "subj_folder"], path_columns=["subj_folder"])
    return [{"id": str(row.id), **subject_files(row.subj_folder, with_labels)} for row in table.itertuples()]


def read_subject(image_paths: Sequence[str], label_path: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The channels stacked and each whitened, float32 (z, y, x, 3), and the labels, int32 (z, y, x) or None.

    Raises:
        DataError: Channels or labels on different grids, labels outside 0-3, non-finite voxels (named).
    """
    image = read_whitened_channels(image_paths)
    if not label_path:
        return image, None
    label = read_voxels(label_path, dtype=np.int32)
    if label.shape != image.shape[:3]:
        raise DataError(f"{label_path}: {label.shape} voxels, but its image has {image.shape[:3]}")
    outside = np.setdiff1d(np.unique(label), np.arange(NUM_CLASSES))
    if outside.size:
        raise DataError(f"{label_path}: label value(s) {outside[:8].tolist()} outside 0-{NUM_CLASSES - 1} "
                        f"(background, {', '.join(TISSUES.values())})")
    return image, label


def read_fn(file_reference: Sequence[str], mode: Mode, params: Mapping[str, Any]) -> Iterator[dict]:
    """Reads one subject folder and yields examples.

    TRAIN: ``n_examples`` class-balanced patches of ``example_size`` (each tissue as often as the
    background), flipped left-right at random (the tissues are the same in both hemispheres), with
    an intensity offset and noise per channel. EVAL: the same patches at positions fixed per subject.
    PREDICT: the whole volume.

    Args:
        file_reference: ``(id, subj_folder)``, a row of DLTK's CSV.
        params: ``example_size`` (z, y, x), ``n_examples``.
    """
    subject_id, folder = str(file_reference[0]), file_reference[1]
    files = subject_files(folder, with_labels=mode != Mode.PREDICT)
    image, label = read_subject(files["image"], files["label"])
    if mode == Mode.PREDICT:
        yield {"features": {"x": image}}
        return
    rng = np.random.default_rng() if mode == Mode.TRAIN else np.random.default_rng(zlib.crc32(subject_id.encode()))
    images, labels = extract_class_balanced_example_array(
        image, label, params["example_size"], params["n_examples"], classes=NUM_CLASSES, rng=rng)
    for patch, patch_label in zip(images, labels):
        if mode == Mode.TRAIN:
            patch, patch_label = flip([patch, patch_label], axis=2, rng=rng)  # x: left-right
            # Whitened channels: an offset of 0.1 and noise of 0.05 standard deviations.
            patch = add_gaussian_noise(add_gaussian_offset(patch, 0.1, rng), 0.05, rng)
        yield {"features": {"x": np.ascontiguousarray(patch, np.float32)},
               "labels": {"y": np.ascontiguousarray(patch_label, np.int32)}}
