"""Tests of dltk2.plots: each figure is a PNG that decodes, written atomically (no temporary left)."""

import cv2
import pandas as pd

from dltk2.plots import plot_confusion_matrix, plot_roc_curve, plot_training_curves


def _is_png(path):
    image = cv2.imread(str(path))
    return image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_every_figure_is_a_png(tmp_path, rng):
    plot_confusion_matrix([[5, 1], [2, 7]], ["normal", "nodule"], tmp_path / "cm.png")
    labels = rng.integers(0, 2, 50)
    plot_roc_curve(labels, rng.uniform(size=50) + 0.3 * labels, tmp_path / "roc.png")
    histories = {"stage 1": pd.DataFrame({"epoch": [0, 1], "loss": [0.7, 0.5], "val_loss": [0.8, 0.6],
                                          "auc": [0.6, 0.7]}),
                 "stage 2": pd.DataFrame({"epoch": [0, 1, 2], "loss": [0.5, 0.4, 0.3], "accuracy": [0.7, 0.8, 0.9]})}
    plot_training_curves(histories, tmp_path / "curves.png")
    assert all(_is_png(tmp_path / name) for name in ("cm.png", "roc.png", "curves.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "curves.png", "roc.png"]
