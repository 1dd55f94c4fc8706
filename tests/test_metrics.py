"""Tests of dltk2.metrics against SimpleITK and a brute-force reference."""

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.distance import cdist

from dltk2.metrics import (_surface, dice_per_class, hausdorff_95_per_class, hausdorff_distance,
                           mean_of_present, mean_surface_distance)

SPACING = (0.8, 0.7, 2.5)  # (x, y, z) mm


def _image(array):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    return image


@pytest.fixture
def pair(rng):
    reference = np.zeros((12, 20, 18), np.uint8)
    reference[3:9, 4:15, 5:14] = 1
    reference[5:7, 8:11, 8:10] = 2
    prediction = np.roll(reference, shift=(1, 2, -1), axis=(0, 1, 2))
    prediction[rng.random(prediction.shape) < 0.02] = 1
    return prediction, reference


def test_dice_matches_simpleitk_label_overlap(pair):
    prediction, reference = pair
    scores = dice_per_class(prediction, reference, [1, 2, 3])
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_image(reference), _image(prediction))
    for label in (1, 2):
        assert scores[label] == pytest.approx(overlap.GetDiceCoefficient(label), rel=1e-9)
    assert scores[3] is None  # absent from both: not NaN, not averaged
    assert mean_of_present(scores) == pytest.approx((scores[1] + scores[2]) / 2)
    assert mean_of_present({1: None}) is None


def test_maximum_hausdorff_matches_simpleitk(pair):
    prediction, reference = pair
    for label in (1, 2):
        filter_ = sitk.HausdorffDistanceImageFilter()
        filter_.Execute(_image(reference == label), _image(prediction == label))
        ours = hausdorff_distance(prediction == label, reference == label, SPACING, percentile=100.0)
        assert ours == pytest.approx(filter_.GetHausdorffDistance(), rel=1e-6)


def test_hd95_and_mean_surface_distance_match_brute_force(pair):
    prediction, reference = pair
    scale = np.array(SPACING[::-1])
    points_p = np.argwhere(_surface(prediction == 1)) * scale
    points_r = np.argwhere(_surface(reference == 1)) * scale
    distances = cdist(points_p, points_r)
    both = np.concatenate([distances.min(axis=1), distances.min(axis=0)])
    assert hausdorff_distance(prediction == 1, reference == 1, SPACING) == pytest.approx(np.percentile(both, 95))
    assert mean_surface_distance(prediction == 1, reference == 1, SPACING) == pytest.approx(both.mean())
    per_class = hausdorff_95_per_class(prediction, reference, [1, 2, 5], SPACING)
    assert per_class[5] is None and per_class[1] == pytest.approx(np.percentile(both, 95))


def test_empty_masks():
    empty = np.zeros((4, 4, 4), bool)
    full = np.zeros((4, 4, 4), bool)
    full[1:3, 1:3, 1:3] = True
    assert hausdorff_distance(empty, empty, SPACING) is None
    assert hausdorff_distance(full, empty, SPACING) == float("inf")
    assert hausdorff_distance(full, full, SPACING) == 0.0


def test_positive_class_auc_equals_scikit_learn_on_softmax_probabilities(rng):
    from sklearn.metrics import roc_auc_score

    from dltk2.metrics import PositiveClassAUC

    labels = rng.integers(0, 2, 300)
    logits = rng.normal(size=(300, 2)).astype(np.float32)
    logits[:, 1] += 1.5 * labels
    metric = PositiveClassAUC(num_thresholds=2000)
    metric.update_state(labels[:150], logits[:150])
    metric.update_state(labels[150:], logits[150:])
    probability = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    assert float(metric.result()) == pytest.approx(roc_auc_score(labels, probability), abs=2e-3)
    assert PositiveClassAUC.from_config(metric.get_config()).name == "auc"
