"""PNG figures of classification results: confusion matrix, ROC curve, training curves.

Drawn with matplotlib's non-interactive Agg backend (no screen needed) and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
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
