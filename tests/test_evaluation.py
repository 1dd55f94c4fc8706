"""Tests of dltk2.evaluation against counts made with numpy and a brute-force AUC."""

import numpy as np
import pytest

from dltk2.evaluation import classification_summary, combine_probabilities, format_summary


def _brute_force_auc(labels, scores):
    """P(score of a positive > score of a negative), ties counting one half."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    wins = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return wins / (len(positive) * len(negative))


def test_binary_summary_equals_counts(rng):
    labels = rng.integers(0, 2, 200)
    p1 = np.clip(0.35 * labels + rng.uniform(0, 0.65, 200), 0, 1)
    probabilities = np.stack([1 - p1, p1], axis=1)
    summary = classification_summary(labels, probabilities, ["normal", "nodule"])
    predicted = (p1 > 0.5).astype(int)
    tp, tn = int(((predicted == 1) & (labels == 1)).sum()), int(((predicted == 0) & (labels == 0)).sum())
    fp, fn = int(((predicted == 1) & (labels == 0)).sum()), int(((predicted == 0) & (labels == 1)).sum())
    assert summary["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert summary["accuracy"] == pytest.approx((tp + tn) / 200)
    assert summary["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert summary["specificity"] == pytest.approx(tn / (tn + fp))
    assert summary["per_class"]["nodule"]["precision"] == pytest.approx(tp / (tp + fp))
    assert summary["per_class"]["normal"]["support"] == int((labels == 0).sum())
    assert summary["roc_auc"] == pytest.approx(_brute_force_auc(labels, p1))
    text = format_summary(summary)
    assert f"accuracy={summary['accuracy']:.4f}" in text and "sensitivity=" in text


def test_single_class_has_no_auc_and_multiclass_has_one(rng):
    summary = classification_summary([0, 0, 0], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), ["a", "b"])
    assert summary["roc_auc"] is None and summary["confusion_matrix"] == [[2, 1], [0, 0]]
    assert "roc_auc=n/a" in format_summary(summary)
    labels = np.repeat([0, 1, 2], 10)
    probabilities = rng.dirichlet(np.ones(3), 30)
    multi = classification_summary(labels, probabilities, ["a", "b", "c"])
    assert 0.0 <= multi["roc_auc"] <= 1.0 and "sensitivity" not in multi


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        classification_summary([0, 1], np.ones((3, 2)) / 2, ["a", "b"])


def test_combining_planes_is_scikit_learns_logistic_regression_fitted_on_other_exams(rng):
    from sklearn.linear_model import LogisticRegression

    labels = rng.integers(0, 2, 60)
    fit = np.clip(labels[:, None] * 0.4 + rng.uniform(0, 0.6, (60, 3)), 0, 1)
    scores = rng.uniform(0, 1, (10, 3))
    combined = combine_probabilities(fit, labels, scores)
    np.testing.assert_allclose(combined, LogisticRegression().fit(fit, labels).predict_proba(scores)[:, 1])
    assert combine_probabilities(fit, labels, fit)[labels == 1].mean() > 0.6
    with pytest.raises(ValueError, match="one class only"):
        combine_probabilities(fit, np.zeros(60), scores)
    with pytest.raises(ValueError, match="one column per model"):
        combine_probabilities(fit, labels, scores[:, :2])
