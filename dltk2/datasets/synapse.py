"""The Synapse (BTCV) multi-organ CT data set: preprocessing to a common grid, and its read_fn.

Raw layout (Synapse's, and ``make_synthetic_synapse.py``'s): ``<data>/img/img0001.nii.gz`` (HU) and
``<data>/label/label0001.nii.gz`` (0 background, 1-13 organs). Preprocessing resamples both to an
isotropic spacing (linear or B-spline for the image, nearest for the label, fill 0), clips the image to
an HU window and scales it to [-1, 1].
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dltk2.augmentation import add_gaussian_noise, add_gaussian_offset
from dltk2.errors import DataError
from dltk2.io.image import ImageGeometry, read_image, read_voxels, write_image
from dltk2.io.reader import Mode
from dltk2.io.orientation import reorient_image
from dltk2.preprocessing import clip_and_scale, resample_to_spacing
from dltk2.sampling import extract_class_balanced_example_array

NUM_CLASSES = 14
ORGANS = {  # BTCV label: name
    1: "spleen", 2: "right_kidney", 3: "left_kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
    7: "stomach", 8: "aorta", 9: "inferior_vena_cava", 10: "portal_and_splenic_veins", 11: "pancreas",
    12: "right_adrenal_gland", 13: "left_adrenal_gland",
}
HU_WINDOW = (-1000.0, 800.0)
CASE = re.compile(r"img(\w+)\.nii(\.gz)?$")


def find_cases(data_dir: str | Path, with_labels: bool = True) -> pd.DataFrame:
    """``id, image, label`` of every ``img/img<id>.nii.gz`` (label empty without ``with_labels``).

    Raises:
        FileNotFoundError: No images, or a missing label file (named).
    """
    data_dir = Path(data_dir)
    images = sorted(p for p in (data_dir / "img").glob("img*.nii*") if CASE.match(p.name))
    if not images:
        raise FileNotFoundError(f"{data_dir / 'img'}: no img<id>.nii.gz files")
    rows = []
    for image in images:
        case_id = CASE.match(image.name).group(1)
        label = data_dir / "label" / image.name.replace("img", "label", 1)
        if with_labels and not label.exists():
            raise FileNotFoundError(f"{label}: no such file (the label of {image.name})")
        rows.append({"id": f"img{case_id}", "image": str(image), "label": str(label) if with_labels else ""})
    return pd.DataFrame(rows)


def preprocess_image(image: sitk.Image, spacing: Sequence[float] = (2.0, 2.0, 2.0), interpolator: str = "linear",
                     hu_window: Sequence[float] = HU_WINDOW) -> sitk.Image:
    """Resamples a CT image (HU) to ``spacing`` (mm), clips to ``hu_window`` and scales to [-1, 1].

    Voxels that fall outside the input are air (the window's low end), not 0 HU.
    """
    resampled = resample_to_spacing(sitk.Cast(image, sitk.sitkFloat32), spacing, interpolator=interpolator,
                                    fill_value=hu_window[0])
    scaled = sitk.GetImageFromArray(clip_and_scale(sitk.GetArrayFromImage(resampled), *hu_window))
    scaled.CopyInformation(resampled)
    return scaled


def preprocess_label(label: sitk.Image, spacing: Sequence[float] = (2.0, 2.0, 2.0)) -> sitk.Image:
    """Resamples a label map to ``spacing`` (mm) with nearest neighbour, fill 0."""
    return resample_to_spacing(sitk.Cast(label, sitk.sitkUInt8), spacing, is_label=True, fill_value=0)


def check_ct(image: sitk.Image, path: str | Path) -> sitk.Image:
    """``image`` if it is a 3D volume of one value per voxel (HU); otherwise a DataError naming ``path``."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{path}: a CT must be a 3D volume of one value per voxel; this image is "
                        f"{image.GetDimension()}D of size {image.GetSize()} with {image.GetNumberOfComponentsPerPixel()} "
                        "value(s) per voxel")
    return image


def check_label_map(label: sitk.Image, image: sitk.Image, label_path: str | Path, image_path: str | Path,
                    num_classes: int = NUM_CLASSES) -> sitk.Image:
    """``label`` if it lies on ``image``'s grid and holds only the labels 0 to ``num_classes - 1``.

    Raises:
        DataError: Another size or grid (spacing, origin, direction to 1e-3 mm), fractional values,
            or labels outside the label set, named with the values found.
    """
    if label.GetDimension() != 3 or label.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{label_path}: a label map must be a 3D volume of one label per voxel; this one is "
                        f"{label.GetDimension()}D of size {label.GetSize()}")
    label_grid, image_grid = ImageGeometry.from_image(label), ImageGeometry.from_image(image)
    if not label_grid.isclose(image_grid, atol=1e-3):
        raise DataError(f"{label_path}: not on the grid of its image {Path(image_path).name} (size {label_grid.size} "
                        f"vs {image_grid.size}, spacing {label_grid.spacing} vs {image_grid.spacing} mm, origin "
                        f"{label_grid.origin} vs {image_grid.origin} mm)")
    values = np.unique(sitk.GetArrayViewFromImage(label))
    if np.issubdtype(values.dtype, np.floating) and not np.all(values == np.round(values)):
        raise DataError(f"{label_path}: label values must be whole numbers; found {values[values != np.round(values)][:5]}")
    outside = values[(values < 0) | (values >= num_classes)]
    if outside.size:
        raise DataError(f"{label_path}: label value(s) {[int(v) for v in outside[:8]]} outside the label set "
                        f"0-{num_classes - 1}")
    return label


def preprocess_case(row: Mapping[str, str], output_dir: str | Path, spacing: Sequence[float],
                    interpolator: str = "linear", orientation: str | None = "LPS") -> dict[str, str]:
    """Preprocesses one case into ``<output_dir>/img`` and ``/label``; returns its CSV row.

    Both files are checked before anything is written (:func:`check_ct`, :func:`check_label_map`),
    then brought to one ``orientation`` (axis codes; transposes and flips, no interpolation), so that
    every training case shows the anatomy in one voxel order and the exported segmenter knows which
    (None: keep each file's own).
    """
    output_dir = Path(output_dir)
    image = check_ct(read_image(row["image"]), row["image"])
    label = None
    if row.get("label"):
        label = check_label_map(read_image(row["label"]), image, row["label"], row["image"])
    if orientation is not None:
        image = reorient_image(image, orientation)
        label = reorient_image(label, orientation) if label is not None else None
    image_out = output_dir / "img" / f"{row['id']}.nii.gz"
    write_image(preprocess_image(image, spacing, interpolator), image_out)
    result = {"id": row["id"], "imgs": str(image_out), "lbls": "", "orig_imgs": row["image"],
              "orig_lbls": row.get("label", "")}
    if label is not None:
        label_out = output_dir / "label" / f"{row['id'].replace('img', 'label', 1)}.nii.gz"
        write_image(preprocess_label(label, spacing), label_out)
        result["lbls"] = str(label_out)
    return result


def split_cases(cases: pd.DataFrame, val_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split without replacement: every case in exactly one of (train, val), at least one each."""
    if len(cases) < 2:
        raise ValueError(f"cannot split {len(cases)} case(s) into training and validation")
    order = np.random.default_rng(seed).permutation(len(cases))
    num_val = min(max(1, int(round(len(cases) * val_fraction))), len(cases) - 1)
    return cases.iloc[np.sort(order[num_val:])], cases.iloc[np.sort(order[:num_val])]


def read_fn(file_reference: Sequence[str], mode: Mode, params: Mapping[str, Any]) -> Iterator[dict]:
    """Reads one preprocessed case and yields examples.

    TRAIN: ``n_examples`` class-balanced patches of ``example_size`` (each organ as often as the
    background), with a random intensity offset and noise. No flips: left and right organs have
    different labels. EVAL: the same patches at positions fixed per case. PREDICT: the whole volume.

    Args:
        file_reference: ``(id, imgs, lbls, ...)`` as the preprocessing CSVs hold them.
        params: ``example_size`` (z, y, x), ``n_examples``.
    """
    case_id, image_path, label_path = file_reference[:3]
    image = read_voxels(image_path)
    image = image[..., np.newaxis]
    if mode == Mode.PREDICT:
        yield {"features": {"x": image}}
        return
    label = read_voxels(label_path, dtype=np.int32)
    rng = np.random.default_rng() if mode == Mode.TRAIN else np.random.default_rng(zlib.crc32(case_id.encode()))
    images, labels = extract_class_balanced_example_array(
        image, label, params["example_size"], params["n_examples"], classes=NUM_CLASSES, rng=rng)
    for patch, patch_label in zip(images, labels):
        if mode == Mode.TRAIN:
            # [-1, 1] spans 1800 HU: an offset of sigma 0.01 is 9 HU, noise 0.02 is 18 HU. Larger
            # offsets (0.05, 45 HU) drown the 30-50 HU contrasts of adrenals, esophagus and veins.
            patch = add_gaussian_noise(add_gaussian_offset(patch, 0.01, rng), 0.02, rng)
        yield {"features": {"x": patch.astype(np.float32)}, "labels": {"y": patch_label.astype(np.int32)}}
