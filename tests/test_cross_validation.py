"""Tests of dltk2.cross_validation: folds by patient, stratified, every case out of fold once; metrics vs scikit-learn."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dltk2.cross_validation import assign_folds, fold_split, out_of_fold, summarise_folds
from dltk2.errors import DataError


@pytest.fixture
def cases(rng):
    """60 patients with 1 to 3 scans each; a patient's class is that of all their scans (30 % positive)."""
    patients = [f"P{i:03d}" for i in range(60)]
    classes = {p: int(rng.random() < 0.3) for p in patients}
    rows = [{"id": f"{p}_{s}", "patient": p, "label": classes[p]} for p in patients for s in range(rng.integers(1, 4))]
    return pd.DataFrame(rows)


def test_no_patient_is_in_two_folds_and_the_classes_are_spread(cases):
    folds = assign_folds(cases["patient"], 5, cases["label"], seed=1)
    assert set(folds) == set(range(5))
    assert cases.assign(fold=folds).groupby("patient")["fold"].nunique().max() == 1
    overall = cases["label"].mean()
    for fold in range(5):
        assert abs(cases["label"][folds == fold].mean() - overall) < 0.15
    np.testing.assert_array_equal(folds, assign_folds(cases["patient"], 5, cases["label"], seed=1))
    assert (folds != assign_folds(cases["patient"], 5, cases["label"], seed=2)).any()
    sizes = np.bincount(assign_folds(cases["patient"], 5, seed=1))
    assert sizes.max() - sizes.min() <= 3  # unstratified: folds of about even size (1-3 scans per patient)


def test_each_case_is_validated_by_exactly_one_fold_and_trained_on_by_the_others(cases):
    validated = []
    for fold in range(5):
        training, validation = fold_split(cases, fold, 5, "patient", "label", seed=3)
        assert not set(training["patient"]) & set(validation["patient"])
        assert len(training) + len(validation) == len(cases)
        validated.append(validation.assign(score=0.5))
    table = out_of_fold(validated, "id", expected_ids=cases["id"])
    assert sorted(table["id"]) == sorted(cases["id"]) and set(table["fold"]) == set(range(5))
    with pytest.raises(DataError, match="predicted by 2 folds"):
        out_of_fold([validated[0], validated[0]], "id")
    with pytest.raises(DataError, match=r"\d+ case\(s\) predicted by no fold"):
        out_of_fold(validated[1:], "id", expected_ids=cases["id"])
    with pytest.raises(DataError, match="cannot make 5 folds"):
        assign_folds(["a", "a", "b"], 5)
    with pytest.raises(ValueError, match="fold must be in 0..4"):
        fold_split(cases, 5, 5, "patient")


def test_the_metrics_are_scikit_learns_pooled_and_per_fold(cases, rng):
    folds = assign_folds(cases["patient"], 4, cases["label"], seed=0)
    table = cases.assign(fold=folds, score=np.clip(cases["label"] * 0.4 + rng.random(len(cases)) * 0.6, 0, 1))
    summary = summarise_folds(table, "classification").set_index("metric")
    assert summary.loc["roc_auc", "pooled"] == pytest.approx(roc_auc_score(table["label"], table["score"]))
    per_fold = [roc_auc_score(table["label"][folds == f], table["score"][folds == f]) for f in range(4)]
    assert summary.loc["roc_auc", "fold_mean"] == pytest.approx(np.mean(per_fold))
    assert summary.loc["roc_auc", "fold_std"] == pytest.approx(np.std(per_fold))
    assert summary.loc["accuracy", "pooled"] == pytest.approx(np.mean((table["score"] >= 0.5) == table["label"]))
    ages = table.assign(label=rng.uniform(20, 80, len(table)), score=rng.uniform(20, 80, len(table)))
    regression = summarise_folds(ages, "regression").set_index("metric")
    assert regression.loc["mean_absolute_error", "pooled"] == pytest.approx(np.mean(np.abs(ages["score"] - ages["label"])))
    organs = table.assign(**{"dice/liver": rng.random(len(table)), "dice/spleen": np.nan})
    segmentation = summarise_folds(organs, "segmentation", metrics=["dice/liver", "dice/spleen"]).set_index("metric")
    assert segmentation.loc["dice/liver", "pooled"] == pytest.approx(organs["dice/liver"].mean())
    assert np.isnan(segmentation.loc["dice/spleen", "pooled"])  # absent everywhere: not scored


def test_several_classes_are_scored_one_vs_rest_as_scikit_learn(rng):
    from sklearn.metrics import accuracy_score, roc_auc_score

    labels = np.tile(np.arange(4), 10)
    logits = rng.normal(size=(40, 4)) + 1.5 * np.eye(4)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    columns = [f"probability_{c}" for c in "abcd"]
    table = pd.DataFrame(probabilities, columns=columns).assign(label=labels, score=probabilities[:, -1],
                                                                 fold=np.arange(40) % 2)
    summary = summarise_folds(table, "classification", probabilities=columns).set_index("metric")
    assert summary.loc["roc_auc", "pooled"] == pytest.approx(roc_auc_score(labels, probabilities, multi_class="ovr"))
    assert summary.loc["accuracy", "pooled"] == pytest.approx(accuracy_score(labels, probabilities.argmax(1)))
    folds = [accuracy_score(f["label"], f[columns].to_numpy().argmax(1)) for _, f in table.groupby("fold")]
    assert summary.loc["accuracy", "fold_mean"] == pytest.approx(np.mean(folds))
