"""Deploying a segmentation model over whole volumes: label maps on the original grid, and their scores.

:func:`segment_cases` runs a :class:`dltk2.inference.SlidingWindowSegmenter` (the exported serving
function itself) over each case's original image, writes ``<output_dir>/<id>_seg.nii.gz`` with that
image's size, spacing, origin and direction (a case of several co-registered sequences, e.g. T1, T1-IR
and FLAIR, gives them as a list of paths: one multi-channel input), scores it against the reference labels on the same grid
(Dice and HD95 per class, in mm), draws an overlay of three planes, and prints one line per case.
:func:`summary_table` gives the per-class means at the end, :func:`report_segmentation` the Dice box
plot and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dltk2.errors import DataError
from dltk2.io.dicom_objects import ModelIdentity, write_segmentation
from dltk2.io.dicom_series import read_series
from dltk2.io.image import read_array, read_image, read_image_information, write_image
from dltk2.plots import plot_box, plot_segmentation_overlay
from dltk2.report import HtmlReport, add_run_configuration

if TYPE_CHECKING:  # TensorFlow loads only when a segmenter is made, so that the cases are checked first
    from dltk2.inference import SlidingWindowSegmenter


def channel_paths(image: str | Path | Sequence[str | Path]) -> list[str]:
    """A case's image as its list of channel files: one path, or the co-registered sequences in order."""
    return [str(image)] if isinstance(image, (str, Path)) else [str(path) for path in image]


def check_cases(cases: Iterable[Mapping[str, str]], predict_only: bool = False) -> None:
    """Checks every case's headers before anything is segmented: 3D images, references on their grids.

    A case of several channels must have them all on its first channel's grid.

    Headers only (:func:`dltk2.io.image.read_image_information`), so a bad case stops a deploy at
    once, before the model is loaded, instead of after the cases before it.

    Raises:
        DataError: A missing file, an image that is not a 3D volume of one value per voxel, or a
            reference label map not on its image's grid; named.
    """
    for case in cases:
        paths = channel_paths(case["image"])
        channels = [(path, read_image_information(path)) for path in paths]
        for path, info in channels:
            if info.dimension != 3 or info.components != 1:
                raise DataError(f"{path}: a volume to segment must be 3D with one value per voxel; this image "
                                f"is {info.dimension}D of size {info.geometry.size}")
        image = channels[0][1]
        others = channels[1:] + ([] if predict_only else [(case["label"], read_image_information(case["label"]))])
        for path, info in others:
            if info.dimension != 3 or not info.geometry.isclose(image.geometry, atol=1e-3):
                raise DataError(f"{path}: not on the grid of its image {paths[0]} (size "
                                f"{info.geometry.size} vs {image.geometry.size}, spacing {info.geometry.spacing} vs "
                                f"{image.geometry.spacing} mm)")


@dataclasses.dataclass(frozen=True)
class DicomOutput:
    """What a DICOM SEG of a DICOM input needs: the model's identity, the segments, de-identification.

    Attributes:
        model: The algorithm recorded in the SEG.
        class_names: Label value -> segment name (no background).
        salt: De-identify the SEG with this secret; None keeps the source's patient and study.
    """

    model: ModelIdentity
    class_names: Mapping[int, str]
    salt: str | None = None


def segment_case(segmenter: SlidingWindowSegmenter, image_path: str | Path | Sequence[str | Path],
                 output_path: str | Path, dicom: DicomOutput | None = None) -> tuple[np.ndarray, sitk.Image]:
    """Segments one image file (or DICOM series folder, or list of channel files) and writes the label map
    on its own grid, atomically.

    The label map is uint8 NIfTI (or what ``output_path``'s suffix says); for a DICOM series and a
    ``dicom`` output, also a DICOM SEG beside it (``<output_path stem>.dcm``) referencing the slices;
    for a segmenter with ``uncertainty``, its per-voxel entropy (``<id>_entropy.nii.gz``).

    Returns:
        ``(labels, image)``: int32 (z, y, x) labels and the SimpleITK image read (for its geometry; the
        first channel of several).

    Raises:
        DataError: An image that is not a 3D volume of one value per voxel, or channels off the first's grid.
    """
    paths = channel_paths(image_path)
    volume = read_series(paths[0]) if len(paths) == 1 and Path(paths[0]).is_dir() else None
    images = [volume.image] if volume is not None else [read_image(path) for path in paths]
    for path, channel in zip(paths, images):
        if channel.GetDimension() != 3 or channel.GetNumberOfComponentsPerPixel() != 1:
            raise DataError(f"{path}: a volume to segment must be 3D with one value per voxel; this image is "
                            f"{channel.GetDimension()}D of size {channel.GetSize()}")
    image = images[0]
    if volume is not None:
        array = volume.array
    else:
        arrays = [sitk.GetArrayFromImage(channel).astype(np.float32) for channel in images]
        for path, other in zip(paths[1:], arrays[1:]):
            if other.shape != arrays[0].shape:
                raise DataError(f"{path}: not on the grid of its first channel {paths[0]} ({other.shape} vs "
                                f"{arrays[0].shape} voxels)")
        array = arrays[0] if len(arrays) == 1 else np.stack(arrays, axis=-1)
    inputs = {"image": array, "spacing": image.GetSpacing()}
    if segmenter.orientation is not None:
        inputs["direction"] = image.GetDirection()
    outputs = segmenter.predict(**inputs)
    labels = outputs["labels"]
    output = sitk.GetImageFromArray(labels.astype(np.uint8))
    output.CopyInformation(image)
    write_image(output, output_path)
    if "entropy" in outputs:  # the segmenter's uncertainty, beside the labels
        uncertainty = sitk.GetImageFromArray(outputs["entropy"].astype(np.float32))
        uncertainty.CopyInformation(image)
        write_image(uncertainty, entropy_path(output_path))
    if volume is not None and dicom is not None:
        write_segmentation(labels, volume, dicom.class_names, dicom_path(output_path), dicom.model, dicom.salt)
    return labels, image


def entropy_path(output_path: str | Path) -> Path:
    """``<id>_seg.nii.gz`` -> ``<id>_entropy.nii.gz``: where a segmenter's uncertainty goes."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name.replace("_seg.", "_entropy.", 1))


def dicom_path(output_path: str | Path) -> Path:
    """``<id>_seg.nii.gz`` -> ``<id>_seg.dcm``: where a DICOM input's SEG goes."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name.split(".")[0] + ".dcm")


def segment_cases(
    segmenter: SlidingWindowSegmenter,
    cases: Iterable[Mapping[str, str]],
    output_dir: str | Path,
    class_names: Mapping[int, str],
    predict_only: bool = False,
    overlays: bool = True,
    dicom: DicomOutput | None = None,
) -> pd.DataFrame:
    """Segments, writes and (with labels) scores every case, printing a line for each.

    Args:
        segmenter: The segmenter (see :class:`dltk2.inference.SlidingWindowSegmenter`).
        cases: Rows with ``id``, ``image`` (the original image, or a list of its channels) and, unless ``predict_only``,
            ``label`` (the original label map).
        output_dir: Where ``<id>_seg.nii.gz`` go.
        class_names: Class index -> name of the scored classes (no background).
        predict_only: Write the label maps without scoring them.
        overlays: Also draw ``<output_dir>/overlays/<id>.png``: three planes through the organs, the
            reference above the prediction (:func:`dltk2.plots.plot_segmentation_overlay`).
        dicom: For cases given as DICOM series folders, also write ``<id>_seg.dcm`` (a DICOM SEG).

    Returns:
        One row per case: ``id``, ``output_path``, ``seconds``, and with labels ``mean_dice`` and
        ``dice/<name>`` and ``hd95_mm/<name>`` per class (NaN where the class is in neither map).
    """
    from dltk2.metrics import dice_per_class, hausdorff_95_per_class, mean_of_present  # Keras: after the checks

    output_dir = Path(output_dir)
    classes = sorted(class_names)
    cases = list(cases)
    check_cases(cases, predict_only)
    rows = []
    for number, case in enumerate(cases, start=1):
        output_path = output_dir / f"{case['id']}_seg.nii.gz"
        paths = channel_paths(case["image"])
        geometry = read_image_information(paths[0]).geometry
        size_zyx = tuple(geometry.size[::-1])
        print(f"case {number}/{len(cases)}: {case['id']}, {'x'.join(map(str, size_zyx))} voxels of "
              f"{'x'.join(f'{s:g}' for s in geometry.spacing)} mm, "
              f"{segmenter.window_count(size_zyx, geometry.spacing, geometry.direction)} windows", flush=True)
        start = time.perf_counter()
        labels, image = segment_case(segmenter, case["image"], output_path, dicom)
        seconds = time.perf_counter() - start
        row = {"id": case["id"], "output_path": str(output_path), "seconds": seconds}
        if dicom is not None and len(paths) == 1 and Path(paths[0]).is_dir():
            row["dicom_path"] = str(dicom_path(output_path))
        reference = None if predict_only else read_array(case["label"], dtype=np.int32)[0]  # on the image's grid
        if overlays:
            plot_segmentation_overlay(sitk.GetArrayViewFromImage(image), reference, labels, class_names,
                                      output_dir / "overlays" / f"{case['id']}.png", image.GetSpacing(),
                                      title=str(case["id"]))
        if predict_only:
            print(f"Id={case['id']}; time={seconds:.2f} secs; output_path={output_path};", flush=True)
        else:
            dice = dice_per_class(labels, reference, classes)
            hd95 = hausdorff_95_per_class(labels, reference, classes, image.GetSpacing())
            row["mean_dice"] = mean_of_present(dice)
            for c in classes:
                row[f"dice/{class_names[c]}"] = np.nan if dice[c] is None else dice[c]
                row[f"hd95_mm/{class_names[c]}"] = np.nan if hd95[c] is None else hd95[c]
            print(f"Id={case['id']}; Dice={row['mean_dice']:.4f}; time={seconds:.2f} secs; "
                  f"output_path={output_path};", flush=True)
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame, class_names: Mapping[int, str]) -> pd.DataFrame:
    """Per class: mean Dice, mean HD95 (mm, finite values only) and the number of cases scored.

    A class missing from one map but present in the other has an infinite HD95; those are counted
    in ``hd95_missed`` rather than averaged.
    """
    rows = []
    for c in sorted(class_names):
        name = class_names[c]
        dice = results[f"dice/{name}"].dropna()
        hd95 = results[f"hd95_mm/{name}"].dropna()
        finite = hd95[np.isfinite(hd95)]
        rows.append({"class": name, "dice": dice.mean() if len(dice) else np.nan,
                     "hd95_mm": finite.mean() if len(finite) else np.nan, "cases": len(dice),
                     "hd95_missed": int((~np.isfinite(hd95)).sum())})
    table = pd.DataFrame(rows)
    mean = {"class": "mean", "dice": table["dice"].mean(), "hd95_mm": table["hd95_mm"].mean(),
            "cases": len(results), "hd95_missed": int(table["hd95_missed"].sum())}
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def report_segmentation(results: pd.DataFrame, class_names: Mapping[int, str], output_dir: str | Path,
                        model_path: str | Path | None = None, title: str = "Segmentation: deploy") -> Path:
    """``dice_boxplot.png`` (scored cases) and ``report.html``: the summary, every case, the overlays.

    Args:
        results: :func:`segment_cases`' table.
        class_names: Class index -> name (no background).
        output_dir: Where :func:`segment_cases` wrote (its ``overlays/`` are embedded).
        model_path: The model folder, whose run configuration the page shows.
    """
    output_dir = Path(output_dir)
    report = HtmlReport(title, f"model {model_path}" if model_path else "")
    scored = "mean_dice" in results
    if scored:
        dice = {class_names[c]: results[f"dice/{class_names[c]}"].tolist() for c in sorted(class_names)}
        plot_box(dice, output_dir / "dice_boxplot.png", "Dice", f"Dice over {len(results)} cases")
        report.add_table(summary_table(results, class_names), "Per organ (HD95 in mm)")
        report.add_image(output_dir / "dice_boxplot.png", "Dice per organ over cases")
    report.add_table(results, "Every case")
    overlays = [output_dir / "overlays" / f"{case_id}.png" for case_id in results["id"]]
    if any(path.exists() for path in overlays):
        report.add_heading("Overlays" + (": reference above, prediction below" if scored else ""))
        for case_id, path in zip(results["id"], overlays):
            report.add_image(path, str(case_id))
    if model_path is not None:
        add_run_configuration(report, model_path)
    return report.write(output_dir / "report.html")
