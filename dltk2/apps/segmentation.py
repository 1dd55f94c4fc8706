"""Deploying a segmentation model over whole volumes: label maps on the original grid, and their scores.

:func:`segment_cases` runs a :class:`dltk2.inference.SlidingWindowSegmenter` (the exported serving
function itself) over each case's original image, writes ``<output_dir>/<id>_seg.nii.gz`` with that
image's size, spacing, origin and direction, scores it against the reference labels on the same grid
(Dice and HD95 per class, in mm), and prints one line per case. :func:`summary_table` gives the
per-class means at the end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk

from dltk2.inference import SlidingWindowSegmenter
from dltk2.io.image import read_array, read_image, write_image
from dltk2.metrics import dice_per_class, hausdorff_95_per_class, mean_of_present


def segment_case(segmenter: SlidingWindowSegmenter, image_path: str | Path, output_path: str | Path
                 ) -> tuple[np.ndarray, sitk.Image]:
    """Segments one image file and writes the label map (uint8) on the image's own grid, atomically.

    Returns:
        ``(labels, image)``: int32 (z, y, x) labels and the SimpleITK image read (for its geometry).
    """
    image = read_image(image_path)
    labels = segmenter.segment(sitk.GetArrayFromImage(image).astype(np.float32), image.GetSpacing())
    output = sitk.GetImageFromArray(labels.astype(np.uint8))
    output.CopyInformation(image)
    write_image(output, output_path)
    return labels, image


def segment_cases(
    segmenter: SlidingWindowSegmenter,
    cases: Iterable[Mapping[str, str]],
    output_dir: str | Path,
    class_names: Mapping[int, str],
    predict_only: bool = False,
) -> pd.DataFrame:
    """Segments, writes and (with labels) scores every case, printing a line for each.

    Args:
        segmenter: The segmenter (see :class:`dltk2.inference.SlidingWindowSegmenter`).
        cases: Rows with ``id``, ``image`` (the original image) and, unless ``predict_only``,
            ``label`` (the original label map).
        output_dir: Where ``<id>_seg.nii.gz`` go.
        class_names: Class index -> name of the scored classes (no background).
        predict_only: Write the label maps without scoring them.

    Returns:
        One row per case: ``id``, ``output_path``, ``seconds``, and with labels ``mean_dice`` and
        ``dice/<name>`` and ``hd95_mm/<name>`` per class (NaN where the class is in neither map).
    """
    output_dir = Path(output_dir)
    classes = sorted(class_names)
    rows = []
    for case in cases:
        output_path = output_dir / f"{case['id']}_seg.nii.gz"
        start = time.perf_counter()
        labels, image = segment_case(segmenter, case["image"], output_path)
        seconds = time.perf_counter() - start
        row = {"id": case["id"], "output_path": str(output_path), "seconds": seconds}
        if predict_only:
            print(f"Id={case['id']}; time={seconds:.2f} secs; output_path={output_path};", flush=True)
        else:
            reference, geometry = read_array(case["label"], dtype=np.int32)
            if reference.shape != labels.shape:
                raise ValueError(f"{case['label']}: size {geometry.size} differs from its image's "
                                 f"{image.GetSize()}")
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
