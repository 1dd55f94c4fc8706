"""Deploy's saliency maps: an overlay per explained case for ``report.html``, the map itself beside it.

A deploy explains its first cases (``--explain N``) through the model folder's ``explain`` signature
(:mod:`dltk2.inference.saliency`: Grad-CAM on the input's own grid, the same map TF Serving returns)
and keeps, per case, in ``<output_dir>/saliency/``:

* ``<case>_saliency.png``: the image and the image under its map (three planes through the map's
  maximum for a 3D scan; :func:`dltk2.plots.plot_saliency_overlay`);
* ``<case>_saliency.nii.gz`` for a 3D scan: the map as float32 on the scan's own grid (its spacing,
  origin and direction), to open over the scan in a viewer (ITK-SNAP, 3D Slicer);
* ``<case>_saliency.npy`` for a 2D image: the (h, w) map as float32.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dltk2.io.atomic import write_bytes_atomically


@dataclass(frozen=True)
class Explanation:
    """One explained case's files.

    Attributes:
        case_id: The case (subject, exam, image) as the predictions table names it.
        overlay: The PNG of the image under its map.
        saliency_map: The map itself (NIfTI for 3D, ``.npy`` for 2D).
        caption: What the report says under the overlay (the case, its prediction).
    """

    case_id: str
    overlay: Path
    saliency_map: Path
    caption: str


def _file_stem(case_id: str) -> str:
    """A case id as a file name: anything but letters, digits, ``.``, ``-`` and ``_`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(case_id)) or "case"


def write_explanation(output_dir: str | Path, case_id: str, image: np.ndarray, saliency: np.ndarray,
                      geometry=None, caption: str = "") -> Explanation:
    """Writes one case's overlay and map to ``output_dir/saliency/`` (atomically).

    Args:
        output_dir: The deploy's output folder.
        case_id: Names the files (made safe for a file name) and the caption.
        image: (h, w) or (z, y, x) intensities, the raw input the map was computed on.
        saliency: The map on ``image``'s grid, in [0, 1].
        geometry: The scan's :class:`dltk2.io.image.ImageGeometry` (3D): the NIfTI map's grid; its
            spacing also sets the overlay's aspect ratios. None: 1 mm, identity.
        caption: Under the overlay; default: the case id.

    Raises:
        ValueError: The map is not on the image's grid.
    """
    from dltk2.io.image import write_image
    from dltk2.plots import plot_saliency_overlay

    folder = Path(output_dir) / "saliency"
    stem = _file_stem(case_id)
    saliency = np.asarray(saliency, np.float32)
    caption = caption or str(case_id)
    spacing = tuple(geometry.spacing) if geometry is not None else None
    overlay = plot_saliency_overlay(image, saliency, folder / f"{stem}_saliency.png", spacing_xyz=spacing,
                                    title=caption)
    if saliency.ndim == 3:
        saliency_map = write_image(saliency, folder / f"{stem}_saliency.nii.gz", geometry)
    else:
        buffer = io.BytesIO()
        np.save(buffer, saliency)
        saliency_map = write_bytes_atomically(folder / f"{stem}_saliency.npy", buffer.getvalue())
    return Explanation(str(case_id), overlay, saliency_map, caption)


def classification_caption(case_id: str, class_names, result: dict, label: int | None = None) -> str:
    """``"<case>: predicted <class> (<probability>)[, true <class>]"``, under a classified case's overlay."""
    class_id = int(result["class_id"])
    said = f"{case_id}: predicted {class_names[class_id]} ({float(result['probabilities'][class_id]):.2f})"
    return said + (f", true {class_names[int(label)]}" if label is not None else "")


def add_explanations(report, explanations: list[Explanation]) -> None:
    """A report section "Where the model looked": every explained case's overlay, its map's file named."""
    if not explanations:
        return
    report.add_heading("Where the model looked (Grad-CAM)")
    report.add_text("Grad-CAM of the predicted class (of the predicted value, for a regression) on each "
                    "explained case's own grid; the maps themselves are in the saliency folder.")
    for explanation in explanations:
        report.add_image(explanation.overlay, f"{explanation.caption} ({explanation.saliency_map.name})")


class PositiveCases:
    """Explains the first ``count`` cases a classifier calls positive (any class but the first, "normal").

    A deploy offers every case it classifies; those it takes (until it has ``count``) go through the
    classifier's ``explain`` (a second call: the classification itself stays the served one) and are
    written by :func:`write_explanation`. A classifier without a feature map to explain (a stacked
    fold ensemble) takes none.

    Args:
        output_dir: The deploy's output folder (the files go to its ``saliency/``).
        count: How many to explain (0: none).
        class_names: The classifier's classes, in index order (the first the negative one).
    """

    def __init__(self, output_dir: str | Path, count: int, class_names: list[str]) -> None:
        self.output_dir, self.count, self.class_names = Path(output_dir), int(count), list(class_names)
        self.explanations: list[Explanation] = []

    def offer(self, classifier, case_id: str, image: np.ndarray, result: dict, label: int | None = None,
              geometry=None) -> Explanation | None:
        """Explains the case if it is predicted positive and fewer than ``count`` are explained.

        Args:
            classifier: A 2D image or series classifier (:mod:`dltk2.inference.classifiers`).
            case_id: The case, as the predictions table names it.
            image: Its raw input, as given to ``classify``.
            result: ``classify``'s outputs (``class_id``, ``probabilities``).
            label: The true class index, if known (said in the caption).
            geometry: A 3D scan's grid, for the NIfTI map (:func:`write_explanation`).
        """
        class_id = int(result["class_id"])
        if len(self.explanations) >= self.count or class_id == 0 or "explain" not in classifier.serving_functions():
            return None
        saliency = classifier.explain(image)["saliency"]
        explanation = write_explanation(self.output_dir, case_id, image, saliency, geometry,
                                        classification_caption(case_id, self.class_names, result, label))
        self.explanations.append(explanation)
        return explanation
