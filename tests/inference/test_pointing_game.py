"""The pointing game's scoring (against scipy's binomial tail, on maps made by hand), then played by models
trained here on the applications' synthetic data, whose generators record where they planted each finding."""

from __future__ import annotations

import json

import cv2
import keras
import numpy as np
import pytest
from scipy import stats

import make_synthetic_chest_xray as chest
import make_synthetic_mrnet as knee
from dltk2.datasets import mrnet
from dltk2.inference.classifiers import ImageClassifier2D, SeriesClassifier, grey_image_input, series_input
from dltk2.inference.pointing_game import dilated, pointing_game
from dltk2.networks.plain_cnn import plain_cnn
from dltk2.networks.transfer import adapt_batch_norm


def test_a_peak_inside_is_a_hit_and_the_baseline_is_the_findings_area():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True  # 4 of 100 pixels
    inside, outside = np.zeros((10, 10)), np.zeros((10, 10))
    inside[3, 2], outside[8, 8] = 1.0, 1.0
    result = pointing_game([inside, outside], [mask, mask])
    assert (result["cases"], result["hits"], result["hit_rate"]) == (2, 1.0, 0.5)
    assert result["random_hit_rate"] == pytest.approx(0.04)
    # A random map hits at least once in two with 1 - 0.96^2.
    assert result["p_value"] == pytest.approx(1 - 0.96 ** 2)


def test_the_tolerance_dilates_the_finding_by_voxels():
    mask = np.zeros((5, 9, 9), bool)
    mask[2, 4, 4] = True
    near = np.zeros(mask.shape)
    near[3, 6, 2] = 1.0  # two voxels away in y and x, one in z
    assert pointing_game([near], [mask])["hits"] == 0
    result = pointing_game([near], [mask], tolerance=2)
    assert result["hits"] == 1 and result["random_hit_rate"] == pytest.approx(dilated(mask, 2).mean())
    assert dilated(mask, 2).sum() == 5 * 5 * 5
    # Per axis: no slack across slices, two voxels in-plane.
    assert pointing_game([near], [mask], tolerance=[0, 2, 2])["hits"] == 0
    assert dilated(mask, [0, 2, 2]).sum() == 25 and pointing_game([near], [mask], tolerance=[1, 2, 2])["hits"] == 1


def test_a_flat_map_scores_its_chance_and_the_p_value_is_the_binomial_tail():
    rng = np.random.default_rng(3)
    masks = [np.zeros((20, 20), bool) for _ in range(30)]
    for mask in masks:
        row, column = rng.integers(0, 16, 2)
        mask[row:row + 4, column:column + 5] = True  # 20 of 400: p = 0.05 each
    flat = pointing_game([np.ones((20, 20))] * 30, masks)
    assert flat["hits"] == pytest.approx(30 * 0.05) and flat["hit_rate"] == pytest.approx(flat["random_hit_rate"])
    maps = []
    for number, mask in enumerate(masks):  # 7 of the 30 point inside
        saliency = rng.uniform(0, 0.5, (20, 20))
        saliency[tuple(np.argwhere(mask)[0] if number < 7 else np.argwhere(~mask)[0])] = 1.0
        maps.append(saliency)
    result = pointing_game(maps, masks)
    assert result["hits"] == 7 and result["p_value"] == pytest.approx(stats.binom.sf(6, 30, 0.05), rel=1e-9)


def test_mismatched_or_empty_findings_are_refused():
    with pytest.raises(ValueError, match="2 maps but 1"):
        pointing_game([np.ones((3, 3))] * 2, [np.ones((3, 3), bool)])
    with pytest.raises(ValueError, match=r"case 0: map \(3, 3\) and finding mask \(4, 4\)"):
        pointing_game([np.ones((3, 3))], [np.ones((4, 4), bool)])
    with pytest.raises(ValueError, match="case 0: its finding mask is empty"):
        pointing_game([np.ones((3, 3))], [np.zeros((3, 3), bool)])


def fitted(model, inputs, targets, epochs, loss, batch_size):
    """Trained, then its batch-norm statistics re-estimated on the training inputs (AdaBN): a few
    hundred steps leave the moving averages behind weights that still move fast, and inference
    without this answers one class for all (0.50 training accuracy, measured)."""
    model.compile(keras.optimizers.Adam(1e-3), loss)
    model.fit(inputs, targets, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True)
    adapt_batch_norm(model, [inputs[k:k + batch_size] for k in range(0, len(inputs), batch_size)])
    return model


def report(name, result):
    print(f"pointing game, {name}: {result['hits']:g} of {result['cases']} true positives hit "
          f"({result['hit_rate']:.3f}; a random map {result['random_hit_rate']:.3f}, p={result['p_value']:.1e}; "
          f"tolerance {result['tolerance']} voxels)")


@pytest.mark.slow
def test_a_chest_classifier_trained_here_points_at_the_nodules_it_found(tmp_path):
    # Conspicuous nodules (the default ones are not learnable from random weights on a CPU: the chest
    # README), 96-pixel radiographs, the served classifier's own 64-pixel input.
    folder = chest.make_dataset(tmp_path, num_images=360, seed=1, size=96, nodule_fraction=0.5,
                                nodule_radius=(0.04, 0.06), nodule_contrast=(1.0, 1.0))
    records = json.loads((folder / "metadata.json").read_text())["images"]
    images = [cv2.imread(str(folder / r["class"] / f"{r['name']}.png"), cv2.IMREAD_UNCHANGED) for r in records]
    labels = np.array([r["class"] == "nodule" for r in records], int)
    inputs = np.stack([grey_image_input(image, 64).numpy() for image in images])
    patients = np.array([r["patient"] for r in records])
    held_out = np.isin(patients, np.unique(patients)[-len(np.unique(patients)) // 5:])  # by patient
    model = fitted(plain_cnn((64, 64, 1), 2, strides=(2, 2, 1)), inputs[~held_out], labels[~held_out], 24,
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True), 32)
    classifier = ImageClassifier2D(model, 64, ["normal", "nodule"])
    maps, masks = [], []
    rows, columns = np.mgrid[0:96, 0:96]
    for index in np.flatnonzero(held_out & (labels == 1)):
        explained = classifier.explain(images[index].astype(np.float32))  # on the raw image's grid
        if int(explained["class_id"]) != 1:
            continue
        mask = np.zeros((96, 96), bool)
        for nodule in records[index]["nodules"]:
            mask |= np.hypot(rows - nodule["row"], columns - nodule["column"]) <= nodule["radius_px"]
        maps.append(explained["saliency"])
        masks.append(mask)
    assert len(maps) >= 15  # true positives to score
    exact, near = pointing_game(maps, masks), pointing_game(maps, masks, tolerance=6)  # 6 px: one feature cell (16x16)
    report("chest nodules", exact)
    report("chest nodules", near)
    assert exact["hit_rate"] > 10 * exact["random_hit_rate"] and exact["p_value"] < 1e-6
    assert near["hit_rate"] > 0.6 and near["p_value"] < 1e-6


@pytest.mark.slow
def test_a_knee_series_classifier_trained_here_points_at_the_findings(tmp_path):
    # MRNet-like sagittal series of 8-12 slices of 48 pixels; the served classifier resamples them to
    # its 8x32x32 input and brings its map back to each series' own grid.
    folder = knee.make_dataset(tmp_path, num_exams=360, num_valid=100, seed=1, size=48, min_slices=8,
                               max_slices=12, abnormal_fraction=0.5)
    findings = json.loads((folder / "findings.json").read_text())
    training, validation = mrnet.load_exams(folder, "train"), mrnet.load_exams(folder, "valid")
    inputs = np.stack([series_input(np.load(path), 8, 32).numpy() for path in training["path"]])
    strides = [(1, 2, 2), (1, 2, 2), (2, 2, 2)]  # a (4, 4, 4) feature map
    model = fitted(plain_cnn((8, 32, 32, 1), 2, strides=strides), inputs, training["label"].to_numpy(), 10,
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True), 16)
    classifier = SeriesClassifier(model, 8, 32, ["normal", "abnormal"])
    maps, masks = [], []
    for exam in validation[validation["label"] == 1].itertuples():
        series = np.load(exam.path)
        explained = classifier.explain(series.astype(np.float32))
        if int(explained["class_id"]) == 1:
            maps.append(explained["saliency"])
            masks.append(knee.finding_mask(findings[exam.id], "sagittal", len(series), 48))
    assert len(maps) >= 20
    near = pointing_game(maps, masks, tolerance=(1, 6, 6))  # a slice, and half a feature cell in-plane
    report("knee findings", pointing_game(maps, masks))
    report("knee findings", near)
    assert near["hit_rate"] > 2.5 * near["random_hit_rate"] and near["p_value"] < 1e-4
