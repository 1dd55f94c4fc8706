"""Tests of dltk2.plots: each figure is a PNG that decodes, written atomically (no temporary left)."""

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest
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


def test_regression_and_box_plots(tmp_path, rng):
    import numpy as np

    from dltk2.plots import plot_box, plot_regression

    true = rng.uniform(20, 80, 30)
    plot_regression(true, true + rng.normal(0, 5, 30), tmp_path / "age.png")
    plot_box({"liver": [0.9, 0.8, np.nan], "spleen": [0.7, 0.75, 0.6], "never": [np.nan]}, tmp_path / "dice.png")
    assert _is_png(tmp_path / "age.png") and _is_png(tmp_path / "dice.png")


def test_a_segmentation_overlay_crosses_the_organs_and_colours_them(tmp_path):
    import numpy as np

    from dltk2.plots import blend_labels, label_colours, plot_segmentation_overlay

    image = np.full((20, 30, 40), -1000.0)
    image[5:15, 5:25, 5:35] = 40.0  # soft tissue in air
    truth = np.zeros(image.shape, np.int32)
    truth[12:16, 20:26, 28:36] = 3  # far from the volume's centre: the planes must find it
    prediction = np.zeros_like(truth)
    prediction[12:16, 20:26, 30:36] = 3
    plot_segmentation_overlay(image, truth, prediction, {1: "spleen", 3: "liver"}, tmp_path / "case.png",
                              (0.8, 0.8, 2.5), title="case")
    picture = cv2.imread(str(tmp_path / "case.png"))[..., ::-1] / 255.0
    liver = label_colours(4)[3]
    blended = blend_labels(np.array([[40.0, -1000.0]]), np.array([[3, 0]]), label_colours(4))[0, 0]
    near = np.abs(picture - blended).max(axis=-1) < 0.03
    assert near.sum() > 100  # the organ, drawn in every panel through it
    assert label_colours(4).shape == (4, 3) and (label_colours(4)[0] == 0).all() and (liver > 0).any()
    plot_segmentation_overlay(image, None, prediction, {3: "liver"}, tmp_path / "only.png", (1, 1, 1))
    assert cv2.imread(str(tmp_path / "only.png")).shape[0] < cv2.imread(str(tmp_path / "case.png")).shape[0]


def test_a_saliency_overlay_shows_the_planes_through_the_maps_peak(tmp_path):
    from dltk2.plots import blend_saliency, plot_saliency_overlay

    grey = np.linspace(0, 1, 12).reshape(3, 4)
    untouched = blend_saliency(grey, np.zeros_like(grey))
    np.testing.assert_allclose(untouched[..., 0], untouched[..., 2])  # no map: the grey image as it is
    hot = np.zeros_like(grey)
    hot[1, 2] = 1.0
    blended = blend_saliency(grey, hot, alpha=1.0)
    np.testing.assert_allclose(blended[1, 2], plt.get_cmap("jet")(1.0)[:3])  # full map: jet's red
    np.testing.assert_allclose(blended[0, 0], untouched[0, 0])
    volume = np.random.default_rng(0).normal(size=(6, 8, 10))
    saliency = np.zeros_like(volume)
    saliency[4, 2, 7] = 1.0
    path = plot_saliency_overlay(volume, saliency, tmp_path / "overlay.png", spacing_xyz=(1, 1, 3), title="x")
    assert cv2.imread(str(path)) is not None
    plot_saliency_overlay(volume[0], saliency[4], tmp_path / "overlay_2d.png")
    with pytest.raises(ValueError, match="not the image's"):
        plot_saliency_overlay(volume, saliency[:3], tmp_path / "bad.png")
