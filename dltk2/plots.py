"""PNG figures of results: confusion matrix, ROC curve, training curves, regression, box plots, label and
saliency overlays.

Drawn with matplotlib's non-interactive Agg backend (no screen needed) and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics  # noqa: E402

from dltk2.io.atomic import write_bytes_atomically  # noqa: E402


def _save(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return write_bytes_atomically(path, buffer.getvalue())


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path) -> Path:
    """Counts (rows: true class, columns: predicted) as a labelled heat map."""
    confusion = np.asarray(confusion)
    figure, axes = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
    axes.imshow(confusion, cmap="Blues")
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if count > confusion.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(class_names)), class_names)
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix")
    return _save(figure, path)


def plot_roc_curve(labels: Sequence[int], scores: Sequence[float], path: str | Path, title: str = "ROC") -> Path:
    """The ROC curve of binary ``labels`` (0/1) against ``scores`` (the positive class's probability)."""
    false_positive, true_positive, _ = metrics.roc_curve(labels, scores)
    auc = metrics.roc_auc_score(labels, scores)
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.plot(false_positive, true_positive, label=f"AUC = {auc:.3f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("false positive rate (1 - specificity)")
    axes.set_ylabel("true positive rate (sensitivity)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_training_curves(histories: Mapping[str, pd.DataFrame], path: str | Path,
                         metrics_to_plot: Sequence[str] = ("loss", "accuracy", "auc")) -> Path:
    """One panel per metric; in each, every stage's training and validation curve, stage after stage.

    Args:
        histories: Stage name -> a table with an ``epoch`` column and metric columns (``loss``,
            ``val_loss``, ...), as Keras' CSVLogger writes, in the order the stages ran (each
            stage's epochs continue from the previous stage's last).
        path: The PNG file.
        metrics_to_plot: Metric names; those absent from every history are left out.
    """
    shown = [m for m in metrics_to_plot if any(m in h or f"val_{m}" in h for h in histories.values())]
    figure, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.5 * max(1, len(shown)), 3.5), squeeze=False)
    for axis, metric in zip(axes[0], shown):
        offset = 0
        for stage, history in histories.items():
            epochs = offset + np.arange(1, len(history) + 1)
            offset += len(history)
            for column, style in ((metric, "-"), (f"val_{metric}", "--")):
                if column in history:
                    axis.plot(epochs, history[column], style, marker=".", label=f"{stage} {column}")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend(fontsize="small")
    return _save(figure, path)


def plot_regression(true: Sequence[float], predicted: Sequence[float], path: str | Path, unit: str = "years",
                    title: str = "predicted against true") -> Path:
    """Predicted against true values with the identity line; MAE and Pearson's r in the legend."""
    true, predicted = np.asarray(true, np.float64), np.asarray(predicted, np.float64)
    mae = float(np.mean(np.abs(predicted - true)))
    r = float(np.corrcoef(true, predicted)[0, 1]) if len(true) > 1 and np.std(true) and np.std(predicted) else np.nan
    figure, axes = plt.subplots(figsize=(4.8, 4.5))
    axes.scatter(true, predicted, s=18, alpha=0.8, label=f"{len(true)} subjects: MAE {mae:.2f} {unit}, r = {r:.3f}")
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8, label="predicted = true")
    axes.set_xlabel(f"true ({unit})")
    axes.set_ylabel(f"predicted ({unit})")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def plot_box(values: Mapping[str, Sequence[float]], path: str | Path, ylabel: str = "Dice",
             title: str = "over cases") -> Path:
    """One box per name (median, quartiles, 1.5 IQR whiskers) with every case's value as a dot; NaN left out."""
    names = list(values)
    data = [np.asarray([v for v in values[name] if np.isfinite(v)], np.float64) for name in names]
    figure, axes = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 1.5), 4.0))
    axes.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for index, column in enumerate(data, start=1):
        axes.scatter(index + rng.uniform(-0.12, 0.12, len(column)), column, s=10, color="black", alpha=0.6)
    axes.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    return _save(figure, path)


def label_colours(num_classes: int) -> np.ndarray:
    """(num_classes, 3) RGB in [0, 1]: matplotlib's tab20, one colour per class (0, the background, black)."""
    palette = np.asarray(plt.get_cmap("tab20").colors)
    colours = palette[np.arange(max(num_classes - 1, 0)) % len(palette)]
    return np.concatenate([np.zeros((1, 3)), colours])


def blend_labels(grey: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A (h, w) grey image with (h, w) labels laid over it: (h, w, 3) RGB in [0, 1]."""
    grey = grey.astype(np.float64)
    spread = float(np.ptp(grey)) or 1.0
    rgb = np.repeat(((grey - grey.min()) / spread)[..., None], 3, axis=-1)
    labelled = labels > 0
    rgb[labelled] = (1 - alpha) * rgb[labelled] + alpha * colours[np.clip(labels[labelled], 0, len(colours) - 1)]
    return rgb


def plot_segmentation_overlay(image: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray,
                              class_names: Mapping[int, str], path: str | Path, spacing_xyz: Sequence[float],
                              window: tuple[float, float] | None = (-160.0, 240.0), title: str = "") -> Path:
    """Axial, coronal and sagittal planes through the labelled organs: the reference above, the prediction below.

    The planes cross at the centre of the voxels labelled in either map (the volume's centre when
    neither has any), each drawn at its physical aspect ratio (``spacing_xyz``, mm); a legend names
    the colour of every organ present.

    Args:
        image: (z, y, x) intensities (HU for CT).
        truth: (z, y, x) reference labels on the same grid, or None (then one row).
        prediction: (z, y, x) predicted labels.
        class_names: Class index -> name (background 0 not drawn).
        path: The PNG.
        spacing_xyz: Voxel size (x, y, z), mm.
        window: Intensity window shown (a soft-tissue CT window by default); None: the image's range.
        title: Above the panels.
    """
    image = np.asarray(image, np.float64)
    if window is not None:
        image = np.clip(image, *window)
    maps = [("reference", truth), ("prediction", prediction)] if truth is not None else [("prediction", prediction)]
    labelled = np.argwhere(np.logical_or(prediction > 0, truth > 0) if truth is not None else prediction > 0)
    centre = labelled.mean(axis=0).round().astype(int) if len(labelled) else np.asarray(image.shape) // 2
    sx, sy, sz = (float(s) for s in spacing_xyz)
    planes = [("axial", lambda v: v[centre[0]], sy / sx), ("coronal", lambda v: v[:, centre[1]][::-1], sz / sx),
              ("sagittal", lambda v: v[:, :, centre[2]][::-1], sz / sy)]
    colours = label_colours(max(class_names) + 1 if class_names else 1)
    figure, axes = plt.subplots(len(maps), 3, figsize=(12, 4.2 * len(maps)), squeeze=False)
    for row, (name, labels) in enumerate(maps):
        for column, (plane, cut, aspect) in enumerate(planes):
            axis = axes[row][column]
            axis.imshow(blend_labels(cut(image), cut(labels), colours), aspect=aspect, interpolation="nearest")
            axis.set_title(f"{name}, {plane}", fontsize="medium")
            axis.axis("off")
    present = sorted({int(c) for c in np.unique(prediction) if c > 0} |
                     ({int(c) for c in np.unique(truth) if c > 0} if truth is not None else set()))
    handles = [matplotlib.patches.Patch(color=colours[c], label=class_names.get(c, str(c))) for c in present
               if c < len(colours)]
    if handles:
        figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize="small",
                      frameon=False)
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06 if handles else 0, 1, 0.96 if title else 1))
    return _save(figure, path)


def blend_saliency(grey: np.ndarray, saliency: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """A (h, w) grey image under a (h, w) saliency map in [0, 1] (jet): (h, w, 3) RGB in [0, 1].

    Each pixel's jet colour is mixed in by ``alpha`` times its saliency, so where the model did not
    look the image shows as it is.
    """
    grey = np.asarray(grey, np.float64)
    low, high = np.percentile(grey, [0.5, 99.5]) if grey.size else (0.0, 1.0)
    rgb = np.repeat(np.clip((grey - low) / ((high - low) or 1.0), 0, 1)[..., None], 3, axis=-1)
    weight = alpha * np.clip(np.asarray(saliency, np.float64), 0, 1)[..., None]
    return (1 - weight) * rgb + weight * plt.get_cmap("jet")(np.clip(saliency, 0, 1))[..., :3]


def plot_saliency_overlay(image: np.ndarray, saliency: np.ndarray, path: str | Path,
                          spacing_xyz: Sequence[float] | None = None, title: str = "") -> Path:
    """Where a classifier looked: the image beside the image with its saliency map laid over it.

    A 2D (h, w) image gives one such pair; a 3D (z, y, x) volume its axial, coronal and sagittal
    planes through the map's maximum (marked +), each at its physical aspect ratio.

    Args:
        image: (h, w) or (z, y, x) intensities.
        saliency: The map on the same grid, in [0, 1] (e.g. an ``explain`` signature's ``saliency``).
        path: The PNG.
        spacing_xyz: Voxel size (x, y[, z]), mm; default isotropic.
        title: Above the panels.
    """
    image, saliency = np.asarray(image, np.float64), np.asarray(saliency, np.float64)
    if image.shape != saliency.shape:
        raise ValueError(f"the map's grid {saliency.shape} is not the image's {image.shape}")
    peak = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    if image.ndim == 2:
        sx, sy = (float(s) for s in tuple(spacing_xyz or (1.0, 1.0))[:2])
        planes = [("image", lambda v: v, sy / sx, (peak[1], peak[0]))]
    else:
        sx, sy, sz = (float(s) for s in (spacing_xyz or (1.0, 1.0, 1.0)))
        z, y, x = peak
        last = image.shape[0] - 1
        planes = [("axial", lambda v: v[z], sy / sx, (x, y)),
                  ("coronal", lambda v: v[:, y][::-1], sz / sx, (x, last - z)),
                  ("sagittal", lambda v: v[:, :, x][::-1], sz / sy, (y, last - z))]
    figure, axes = plt.subplots(2, len(planes), figsize=(4 * len(planes), 8.4), squeeze=False)
    for column, (plane, cut, aspect, (px, py)) in enumerate(planes):
        shown = blend_saliency(cut(image), np.zeros_like(cut(saliency)))
        for row, rgb in enumerate((shown, blend_saliency(cut(image), cut(saliency)))):
            axis = axes[row][column]
            axis.imshow(rgb, aspect=aspect, interpolation="nearest")
            if row == 1:
                axis.plot(px, py, "w+", markersize=10)
            axis.set_title(f"{plane}{', saliency' if row else ''}", fontsize="medium")
            axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.95 if title else 1))
    return _save(figure, path)


def plot_volume_panels(volumes: Mapping[str, np.ndarray], path: str | Path, spacing_xyz: Sequence[float] | None = None,
                       title: str = "") -> Path:
    """Volumes on one grid side by side: a column each, its central axial, coronal and sagittal planes.

    One grey scale for all (the first volume's 0.5-99.5 percentiles), so that a blur or a wrong
    intensity shows as such: super-resolution against interpolation, reconstructions, samples.

    Args:
        volumes: Name -> (z, y, x) intensities, all of one shape.
        spacing_xyz: Voxel size (x, y, z), mm, for the planes' aspect ratios; default isotropic.
    """
    shapes = {np.shape(volume) for volume in volumes.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"the volumes must be 3D of one shape, got {sorted(shapes)}")
    first = np.asarray(next(iter(volumes.values())), np.float64)
    low, high = np.percentile(first, [0.5, 99.5])
    sx, sy, sz = (float(s) for s in (spacing_xyz or (1.0, 1.0, 1.0)))
    z, y, x = (n // 2 for n in first.shape)
    planes = [("axial", lambda v: v[z], sy / sx), ("coronal", lambda v: v[:, y][::-1], sz / sx),
              ("sagittal", lambda v: v[:, :, x][::-1], sz / sy)]
    figure, axes = plt.subplots(len(planes), len(volumes), figsize=(2.6 * len(volumes), 2.6 * len(planes) + 0.4),
                                squeeze=False)
    for column, (name, volume) in enumerate(volumes.items()):
        for row, (plane, cut, aspect) in enumerate(planes):
            axis = axes[row][column]
            axis.imshow(cut(np.asarray(volume)), cmap="gray", vmin=low, vmax=high, aspect=aspect,
                        interpolation="nearest")
            axis.set_title(name if row == 0 else "", fontsize="medium")
            axis.set_ylabel(plane)
            axis.set_xticks([])
            axis.set_yticks([])
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_slice_grid(volumes: Sequence[np.ndarray], path: str | Path, columns: int = 4, title: str = "",
                    value_range: tuple[float, float] = (-1.0, 1.0), aspect: float = 1.0) -> Path:
    """The central axial slice of each (z, y, x) volume in a grid, one grey scale (``value_range``): samples."""
    rows = max(1, -(-len(volumes) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.2 * rows + 0.4), squeeze=False)
    for number, axis in enumerate(axes.flat):
        axis.axis("off")
        if number < len(volumes):
            volume = np.asarray(volumes[number])
            axis.imshow(volume[volume.shape[0] // 2], cmap="gray", vmin=value_range[0], vmax=value_range[1],
                        aspect=aspect, interpolation="nearest")
    if title:
        figure.suptitle(title)
    return _save(figure, path)
