"""Makes IXI_HH-like T1 volumes and demographics from nilearn's bundled MNI152 template (real anatomy).

Writes the layout ``download_IXI_HH.py`` writes for the real data::

    OUTPUT_DIR/demographic_HH.csv            IXI's columns, one row per subject
    OUTPUT_DIR/<s>mm/<ID>/T1_<s>mm.nii.gz    for each spacing s in --spacings (int16, LPS geometry)
    OUTPUT_DIR/<s>mm/<ID>/T2_<s>mm.nii.gz    and PD, with --sequences T1,T2,PD

Each subject is the template deformed and degraded as real scans differ:

* brain size: a global scale with a sex difference of about 9 % in volume (males larger) and an
  individual spread of 0.8 % overall and 0.6 % per axis (2.6 % in volume), so the two distributions
  overlap: size alone classifies about 95 % of subjects correctly;
* age (20-86 years) enlarges the lateral ventricles by up to about 4 mm of CSF around them;
* a random rigid pose (rotation up to 8 degrees, shift up to 6 mm), a smooth B-spline elastic
  deformation (a few mm), a multiplicative bias field (about +-15 %), Gaussian noise and a random
  intensity scale.

Nothing is downloaded: the template ships inside nilearn.

Example:
    python data_scripts/make_synthetic_ixi.py --output_dir data/IXI_synthetic --num_subjects 100 --seed 0
"""

from __future__ import annotations

import csv
import datetime
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from absl import app, flags
from scipy import ndimage

from dltk2.io.atomic import atomic_destination
from dltk2.io.image import write_image

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Command-line flags (defined only when run as a script, so tests can import the module)."""
    flags.DEFINE_string("output_dir", None, "Folder to write the data set into.")
    flags.DEFINE_integer("num_subjects", 100, "Number of subjects.")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same data set.")
    flags.DEFINE_list("spacings", ["1", "2"], "Isotropic voxel sizes in mm to write (IXI_HH: 1 and 2).")
    flags.DEFINE_integer("first_id", 12, "Number of the first subject ID (IXI012 is the first HH subject).")
    flags.DEFINE_integer("workers", max(1, min(4, os.cpu_count() or 1)), "Processes generating subjects.")
    flags.DEFINE_list("sequences", ["T1"], "Sequences to write: T1, and T2 and PD (IXI's other two) as wanted.")


SEX_COLUMN = "SEX_ID (1=m, 2=f)"
CSV_COLUMNS = [
    "IXI_ID", SEX_COLUMN, "HEIGHT", "WEIGHT", "ETHNIC_ID", "MARITAL_ID", "OCCUPATION_ID",
    "QUALIFICATION_ID", "DOB", "DATE_AVAILABLE", "STUDY_DATE", "AGE",
]
SEX_VOLUME_RATIO = 1.09  # mean male / female brain volume
TEMPLATE_INTENSITY_MAX = 1.0
SEQUENCE_CONTRAST = {  # (CSF, grey matter, white matter), in units of the T1 template's maximum
    "T2": (0.95, 0.55, 0.40),  # fluid bright, white matter darkest
    "PD": (0.85, 0.70, 0.60),  # proton density: little contrast, fluid brightest
}
_TISSUE_MAPS: dict | None = None

_TEMPLATE: dict | None = None


def nifti_to_sitk(nifti) -> sitk.Image:
    """A nibabel image (RAS affine) as a float32 SimpleITK image with ITK's LPS geometry."""
    data = np.asarray(nifti.get_fdata(), dtype=np.float32)  # (x, y, z), RAS
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ nifti.affine  # RAS -> LPS, as ITK
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)).copy())
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(affine[:3, 3].tolist())
    image.SetDirection((affine[:3, :3] / spacing).flatten().tolist())
    return image


def load_template() -> dict:
    """The MNI152 1 mm T1 template as a SimpleITK image (LPS), its brain mask and ventricle distances."""
    global _TEMPLATE
    if _TEMPLATE is not None:
        return _TEMPLATE
    from nilearn import datasets

    image = nifti_to_sitk(datasets.load_mni152_template(resolution=1))
    spacing = np.array(image.GetSpacing())
    array = sitk.GetArrayFromImage(image)  # (z, y, x)
    brain = array > 0.02
    # Lateral ventricles: the large dark CSF regions deep inside the brain.
    interior = ndimage.binary_erosion(brain, iterations=12)
    dark = interior & (array < 0.35 * array[brain].max())
    labels, count = ndimage.label(dark)
    sizes = ndimage.sum(dark, labels, index=np.arange(1, count + 1))
    keep = np.argsort(sizes)[::-1][:2] + 1
    ventricles = np.isin(labels, keep)
    distance = ndimage.distance_transform_edt(~ventricles, sampling=spacing[::-1]).astype(np.float32)
    csf_value = float(np.median(array[ventricles]))
    _TEMPLATE = {
        "image": image,
        "array": array,
        "brain": brain,
        "ventricle_distance": distance,
        "csf_value": csf_value,
        "centre": np.array(image.TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2.0 for s in image.GetSize()])),
    }
    return _TEMPLATE


def subject_parameters(rng: np.random.Generator, index: int, first_id: int) -> dict:
    """Demographics and deformation parameters of one subject."""
    sex = int(rng.integers(1, 3))
    age = float(rng.uniform(20.0, 86.0))
    half_log_ratio = np.log(SEX_VOLUME_RATIO) / 3.0 / 2.0  # per-axis log scale, half the difference
    global_scale = np.exp((half_log_ratio if sex == 1 else -half_log_ratio) + rng.normal(0.0, 0.008))
    axis_scales = global_scale * np.exp(rng.normal(0.0, 0.006, size=3))
    return {
        "id": f"IXI{first_id + index:03d}",
        "sex": sex,
        "age": age,
        "scales": axis_scales,
        "rotation": np.deg2rad(rng.uniform(-8.0, 8.0, size=3)),
        "translation": rng.uniform(-6.0, 6.0, size=3),
        "elastic_seed": int(rng.integers(2**31)),
        "bias_coefficients": rng.normal(0.0, 0.06, size=9),
        "noise_fraction": float(rng.uniform(0.02, 0.05)),
        "intensity_scale": float(rng.uniform(400.0, 900.0)),
        "height": int(rng.normal(178 if sex == 1 else 164, 7)),
        "weight": int(rng.normal(80 if sex == 1 else 65, 10)),
        "demographics": [int(v) for v in rng.integers(1, 6, size=4)],
    }


def subject_transform(params: dict, template: dict) -> sitk.Transform:
    """Maps subject (output) space to template space: scaled, rotated, shifted, elastically warped."""
    centre = template["centre"]
    affine = sitk.Euler3DTransform()
    affine.SetCenter(centre.tolist())
    affine.SetRotation(*params["rotation"].tolist())
    affine.SetTranslation(params["translation"].tolist())
    scaling = sitk.ScaleTransform(3, (1.0 / params["scales"]).tolist())
    scaling.SetCenter(centre.tolist())
    rng = np.random.default_rng(params["elastic_seed"])
    elastic = sitk.BSplineTransformInitializer(template["image"], [4, 4, 4], order=3)
    elastic.SetParameters((rng.normal(0.0, 2.0, size=len(elastic.GetParameters()))).tolist())
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(elastic)
    composite.AddTransform(scaling)
    composite.AddTransform(affine)
    return composite


def subject_template(params: dict, template: dict) -> sitk.Image:
    """The template with ventricles enlarged for the subject's age."""
    dilation_mm = 0.06 * (params["age"] - 20.0)
    array = template["array"].copy()
    grow = (template["ventricle_distance"] <= dilation_mm) & template["brain"]
    array[grow] = np.minimum(array[grow], template["csf_value"])
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(template["image"])
    return image


def bias_field(shape: tuple[int, int, int], coefficients: np.ndarray) -> np.ndarray:
    """exp of a second-order polynomial over [-1, 1]^3: a smooth multiplicative field."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    terms = [x, y, z, x * y, x * z, y * z, x * x - 1 / 3, y * y - 1 / 3, z * z - 1 / 3]
    return np.exp(sum(c * t for c, t in zip(coefficients, terms))).astype(np.float32)


def subject_grid(spacing_mm: float | Sequence[float], template: dict) -> sitk.Image:
    """The grid a subject is written on: the template's extent and axes, centred, voxels of ``spacing_mm``
    (one size, or (x, y, z) for thick slices)."""
    source = template["image"]
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), 3)
    extent = np.array(source.GetSize()) * np.array(source.GetSpacing())
    size = [int(round(e / s)) for e, s in zip(extent, spacing)]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(spacing.tolist())
    reference.SetDirection(source.GetDirection())
    half = (np.array(size) - 1) / 2.0 * spacing
    direction = np.array(source.GetDirection()).reshape(3, 3)
    reference.SetOrigin((template["centre"] - direction @ half).tolist())
    return reference


def ventricle_region(params: dict, spacing_mm: float, template: dict, reach_mm: float = 4.0) -> sitk.Image:
    """Where age changes this subject's scan: the lateral ventricles and ``reach_mm`` around them.

    The template's region within ``reach_mm`` of its ventricles (age grows them by up to 0.06 mm a
    year past 20: 3.96 mm at 86), carried by the subject's own deformation onto its grid (nearest
    neighbour): uint8, 1 inside, with the written scan's geometry. The ground truth of a pointing
    game for age.
    """
    region = sitk.GetImageFromArray(((template["ventricle_distance"] <= reach_mm) & template["brain"]).astype(np.uint8))
    region.CopyInformation(template["image"])
    return sitk.Resample(region, subject_grid(spacing_mm, template), subject_transform(params, template),
                         sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def render_subject(params: dict, spacing_mm: float, template: dict) -> sitk.Image:
    """Resamples the subject's deformed template onto an isotropic grid of ``spacing_mm``."""
    source = subject_template(params, template)
    reference = subject_grid(spacing_mm, template)
    warped = sitk.Resample(source, reference, subject_transform(params, template), sitk.sitkLinear, 0.0)
    array = sitk.GetArrayFromImage(warped)
    rng = np.random.default_rng(params["elastic_seed"] + int(spacing_mm * 1000))
    array = array * bias_field(array.shape, params["bias_coefficients"])
    array = array + rng.normal(0.0, params["noise_fraction"] * TEMPLATE_INTENSITY_MAX, size=array.shape)
    array = np.clip(array, 0.0, None) * params["intensity_scale"]
    image = sitk.GetImageFromArray(np.round(array).astype(np.int16))
    image.CopyInformation(reference)
    return image


def load_tissue_maps() -> dict:
    """The template (for its geometry and centre) and nilearn's CSF, GM and WM probability maps on its grid."""
    global _TISSUE_MAPS
    if _TISSUE_MAPS is not None:
        return _TISSUE_MAPS
    from nilearn import datasets

    template = load_template()
    grey = nifti_to_sitk(datasets.load_mni152_gm_template(resolution=1))
    white = nifti_to_sitk(datasets.load_mni152_wm_template(resolution=1))
    brain = nifti_to_sitk(datasets.load_mni152_brain_mask(resolution=1))
    grey_array, white_array = sitk.GetArrayFromImage(grey), sitk.GetArrayFromImage(white)
    csf = np.clip(sitk.GetArrayFromImage(brain) - grey_array - white_array, 0.0, 1.0)
    maps = []
    for array in (csf, grey_array, white_array):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array, np.float32))
        image.CopyInformation(template["image"])
        maps.append(image)
    _TISSUE_MAPS = {"template": template, "tissues": maps}
    return _TISSUE_MAPS


def render_sequence(params: dict, spacing_mm: float | Sequence[float], template: dict, sequence: str) -> sitk.Image:
    """The subject's scan of one sequence: ``T1`` (:func:`render_subject`), or ``T2`` or ``PD`` from the tissue maps.

    T2 and PD are partial-volume mixtures of the subject's CSF, grey and white matter
    (:data:`SEQUENCE_CONTRAST`), the ventricles grown for its age as in its T1, through the same
    deformation, with their own bias field, noise and intensity scale: the sequences of one subject
    share its anatomy, as IXI's T1, T2 and PD do.
    """
    if sequence == "T1":
        return render_subject(params, spacing_mm, template)
    if sequence not in SEQUENCE_CONTRAST:
        raise ValueError(f"sequence must be T1 or one of {sorted(SEQUENCE_CONTRAST)}, got {sequence!r}")
    maps = load_tissue_maps()
    reference = subject_grid(spacing_mm, template)
    transform = subject_transform(params, template)
    grow = (template["ventricle_distance"] <= 0.06 * (params["age"] - 20.0)) & template["brain"]
    tissues = []
    for number, tissue in enumerate(maps["tissues"]):  # CSF, GM, WM
        array = sitk.GetArrayFromImage(tissue)
        array = np.where(grow, 1.0 if number == 0 else 0.0, array).astype(np.float32)
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(tissue)
        tissues.append(sitk.GetArrayFromImage(sitk.Resample(image, reference, transform, sitk.sitkLinear, 0.0)))
    clean = np.tensordot(np.stack(tissues, axis=-1), np.asarray(SEQUENCE_CONTRAST[sequence], np.float32), axes=1)
    rng = np.random.default_rng(params["elastic_seed"] + int(np.mean(spacing_mm) * 1000) + len(sequence) * 7919
                                + ord(sequence[0]))
    array = clean * bias_field(clean.shape, params["bias_coefficients"] * rng.uniform(0.5, 1.5, size=9))
    array = array + rng.normal(0.0, params["noise_fraction"] * TEMPLATE_INTENSITY_MAX, size=array.shape)
    array = np.clip(array, 0.0, None) * params["intensity_scale"] * rng.uniform(0.7, 1.4)
    image = sitk.GetImageFromArray(np.round(array).astype(np.int16))
    image.CopyInformation(reference)
    return image


def make_subject(args: tuple[dict, str, list[float], Sequence[str]]) -> str:
    params, output_dir, spacings, sequences = args
    template = load_template()
    for spacing in spacings:
        label = f"{spacing:g}mm"
        for sequence in sequences:
            path = Path(output_dir) / label / params["id"] / f"{sequence}_{label}.nii.gz"
            write_image(render_sequence(params, spacing, template, sequence), path)
    return params["id"]


def csv_row(params: dict, rng: np.random.Generator) -> list:
    study = datetime.date(2005, 6, 1) + datetime.timedelta(days=int(rng.integers(0, 500)))
    birth = study - datetime.timedelta(days=int(round(params["age"] * 365.25)))
    age = (study - birth).days / 365.25
    return [params["id"], params["sex"], params["height"], params["weight"], *params["demographics"],
            birth.isoformat(), 1, study.isoformat(), f"{age:.10f}"]


def dataset_parameters(rng: np.random.Generator | int, num_subjects: int, first_id: int = 12) -> list[dict]:
    """Every subject's :func:`subject_parameters`, in order; a seed gives those ``make_dataset`` wrote."""
    rng = np.random.default_rng(rng) if isinstance(rng, int) else rng
    return [subject_parameters(rng, i, first_id) for i in range(num_subjects)]


def make_dataset(output_dir: str | Path, num_subjects: int, seed: int, spacings: list[float],
                 first_id: int = 12, workers: int = 1, sequences: Sequence[str] = ("T1",)) -> Path:
    """Writes the data set (each subject's ``sequences``: T1, T2, PD) and returns the CSV's path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    subjects = dataset_parameters(rng, num_subjects, first_id)
    jobs = [(params, str(output_dir), spacings, tuple(sequences)) for params in subjects]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(make_subject, jobs))
    else:
        done = [make_subject(job) for job in jobs]
    csv_path = output_dir / "demographic_HH.csv"
    with atomic_destination(csv_path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for params in subjects:
            writer.writerow(csv_row(params, rng))
    print(f"wrote {len(done)} subjects and {csv_path}")
    return csv_path


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    spacings = [float(s) for s in FLAGS.spacings]
    make_dataset(FLAGS.output_dir, FLAGS.num_subjects, FLAGS.seed, spacings, FLAGS.first_id, FLAGS.workers,
                 FLAGS.sequences)


if __name__ == "__main__":
    define_flags()
    app.run(main)
