"""Makes MRBrainS13-like subjects: T1, T1-IR and FLAIR volumes and their tissue labels, from real anatomy.

Writes MRBrainS13's layout (its ``.nii`` files gzipped) and DLTK's CSVs of subject folders::

    OUTPUT_DIR/TrainingData/<n>/T1.nii.gz, T1_IR.nii.gz, T2_FLAIR.nii.gz    int16, one grid per subject
    OUTPUT_DIR/TrainingData/<n>/LabelsForTesting.nii.gz                    0 background, 1 CSF, 2 GM, 3 WM
    OUTPUT_DIR/train.csv, val.csv                                          id,subj_folder

The anatomy is nilearn's bundled MNI152 grey- and white-matter probability templates; CSF is the rest
of its brain mask (sulci and ventricles). Each subject takes the IXI generator's deformation
(``make_synthetic_ixi``: size, rigid pose, B-spline warp) of the three tissue maps, and each channel
is their partial-volume mixture with its own tissue contrast:

=========  =====  =====  =====
channel    CSF    GM     WM
=========  =====  =====  =====
T1         0.25   0.55   0.80
T1_IR      0.05   0.45   0.90
T2_FLAIR   0.10   0.75   0.55
=========  =====  =====  =====

then a per-channel multiplicative bias field, Rician-like noise (the magnitude of Gaussian noise in
two channels, so the background is not zero) and a per-channel intensity scale. The label of a voxel
is its most probable class after the deformation (background where the brain mask is under 0.5).
MRBrainS13's own scans are 0.958 x 0.958 x 3.0 mm; ``--spacing`` sets this data's voxels (x, y, z).

Example:
    python data_scripts/make_synthetic_mrbrains.py --output_dir data/mrbrains_synthetic --num_subjects 10
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from absl import app, flags

import make_synthetic_ixi as ixi
from dltk2.io.atomic import atomic_destination
from dltk2.io.image import write_image

FLAGS = flags.FLAGS

CHANNELS = ("T1", "T1_IR", "T2_FLAIR")
LABEL_FILE = "LabelsForTesting"
TISSUES = {1: "csf", 2: "grey_matter", 3: "white_matter"}
CONTRAST = np.array([  # channel x (CSF, GM, WM), in units of the template's maximum
    [0.25, 0.55, 0.80],
    [0.05, 0.45, 0.90],
    [0.10, 0.75, 0.55],
], np.float32)

def define_flags() -> None:
    """Command-line flags (defined only when run as a script, so tests can import the module)."""
    flags.DEFINE_string("output_dir", None, "Folder to write the data set into.")
    flags.DEFINE_integer("num_subjects", 10, "Number of subjects.")
    flags.DEFINE_integer("num_val", 2, "Of which validation subjects (the last ones, in val.csv).")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same data set.")
    flags.DEFINE_list("spacing", ["2", "2", "3"], "Voxel size (x, y, z) in mm; one value for isotropic voxels.")
    flags.DEFINE_integer("workers", max(1, min(4, os.cpu_count() or 1)), "Processes generating subjects.")


def render_subject(params: dict, spacing_mm: float | Sequence[float]) -> tuple[list[sitk.Image], sitk.Image]:
    """The subject's three channels (int16) and its label map (uint8), on one grid of ``spacing_mm``."""
    maps = ixi.load_tissue_maps()
    template = maps["template"]
    reference = ixi.subject_grid(spacing_mm, template)
    transform = ixi.subject_transform(params, template)
    tissues = np.stack([sitk.GetArrayFromImage(sitk.Resample(tissue, reference, transform, sitk.sitkLinear, 0.0))
                        for tissue in maps["tissues"]], axis=-1)  # (z, y, x, CSF/GM/WM)
    brain = tissues.sum(axis=-1)
    labels = np.where(brain >= 0.5, 1 + np.argmax(tissues, axis=-1), 0).astype(np.uint8)
    rng = np.random.default_rng(params["elastic_seed"] + 7)
    channels = []
    for number, contrast in enumerate(CONTRAST):
        clean = tissues @ contrast
        coefficients = params["bias_coefficients"] * rng.uniform(0.5, 1.5, size=9)
        biased = clean * ixi.bias_field(clean.shape, coefficients)
        sigma = params["noise_fraction"] * ixi.TEMPLATE_INTENSITY_MAX
        noisy = np.hypot(biased + rng.normal(0.0, sigma, clean.shape), rng.normal(0.0, sigma, clean.shape))
        scale = params["intensity_scale"] * rng.uniform(0.7, 1.4)
        image = sitk.GetImageFromArray(np.round(noisy * scale).astype(np.int16))
        image.CopyInformation(reference)
        channels.append(image)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(reference)
    return channels, label_image


def make_subject(args: tuple[dict, str, Sequence[float]]) -> str:
    params, folder, spacing = args
    channels, labels = render_subject(params, spacing)
    for name, image in zip(CHANNELS, channels):
        write_image(image, Path(folder) / f"{name}.nii.gz")
    write_image(labels, Path(folder) / f"{LABEL_FILE}.nii.gz")
    return folder


def make_dataset(output_dir: str | Path, num_subjects: int, seed: int, spacing: float | Sequence[float] = (2, 2, 3),
                 num_val: int = 2, workers: int = 1) -> tuple[Path, Path]:
    """Writes the subjects and ``train.csv`` / ``val.csv`` (``id,subj_folder``); returns the two CSVs."""
    if not 0 < num_val < num_subjects:
        raise ValueError(f"num_val must leave training subjects: {num_val} of {num_subjects}")
    output_dir = Path(output_dir)
    subjects = ixi.dataset_parameters(seed, num_subjects, first_id=1)
    folders = [str(output_dir / "TrainingData" / str(number)) for number in range(1, num_subjects + 1)]
    jobs = [(params, folder, spacing) for params, folder in zip(subjects, folders)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(make_subject, jobs))
    else:
        for job in jobs:
            make_subject(job)
    csvs = []
    for name, rows in (("train.csv", folders[:-num_val]), ("val.csv", folders[-num_val:])):
        path = output_dir / name
        with atomic_destination(path) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "subj_folder"])
            writer.writerows([Path(folder).name, folder] for folder in rows)
        csvs.append(path)
    print(f"wrote {num_subjects} subjects ({num_val} for validation) under {output_dir / 'TrainingData'}")
    return csvs[0], csvs[1]


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    spacing = [float(s) for s in FLAGS.spacing]
    make_dataset(FLAGS.output_dir, FLAGS.num_subjects, FLAGS.seed, spacing if len(spacing) > 1 else spacing[0],
                 FLAGS.num_val, FLAGS.workers)


if __name__ == "__main__":
    define_flags()
    app.run(main)
