"""Classification results as a radiologist's table: confusion matrix, per-class precision and recall, AUC.

Everything is computed with scikit-learn's metrics from labels and predicted class probabilities, so the
numbers are the ones other tools report for the same predictions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn import metrics
from sklearn.linear_model import LogisticRegression


def classification_summary(labels: Sequence[int], probabilities: np.ndarray, class_names: Sequence[str]) -> dict:
    """Confusion matrix, accuracy, per-class precision / recall / f1 / support, and ROC AUC.

    Args:
        labels: (n,) true class indices.
        probabilities: (n, classes) predicted class probabilities (rows sum to 1).
        class_names: One per class.

    Returns:
        A JSON-serialisable dict: ``confusion_matrix`` (rows: true, columns: predicted), ``accuracy``,
        ``per_class`` (name -> precision, recall, f1, support), ``roc_auc`` (binary: of the second
        class's probability; more classes: one-vs-rest macro average; None when the labels hold a
        single class), and, for two classes, ``sensitivity`` (recall of class 1) and ``specificity``
        (recall of class 0).
    """
    labels = np.asarray(labels, np.int64)
    probabilities = np.asarray(probabilities, np.float64)
    classes = list(range(len(class_names)))
    if probabilities.shape != (len(labels), len(classes)):
        raise ValueError(f"probabilities {probabilities.shape} do not match {len(labels)} labels and "
                         f"{len(classes)} classes")
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0)
    summary = {
        "count": int(len(labels)),
        "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=classes).tolist(),
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "per_class": {name: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                             "support": int(support[c])} for c, name in enumerate(class_names)},
        "roc_auc": None,
    }
    if len(np.unique(labels)) > 1:
        if len(classes) == 2:
            summary["roc_auc"] = float(metrics.roc_auc_score(labels, probabilities[:, 1]))
        elif set(np.unique(labels)) == set(classes):
            summary["roc_auc"] = float(metrics.roc_auc_score(labels, probabilities, multi_class="ovr",
                                                             labels=classes))
    if len(classes) == 2:
        summary["sensitivity"] = float(recall[1])
        summary["specificity"] = float(recall[0])
    return summary


def format_summary(summary: dict) -> str:
    """The summary as a fixed-width table (per-class rows, then accuracy, AUC, confusion matrix)."""
    names = list(summary["per_class"])
    width = max(12, *(len(name) + 2 for name in names))
    lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, row in summary["per_class"].items():
        lines.append(f"{name:<{width}}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}"
                     f"{row['support']:>10d}")
    auc = summary["roc_auc"]
    lines.append(f"accuracy={summary['accuracy']:.4f}; roc_auc={'n/a' if auc is None else f'{auc:.4f}'}; "
                 f"n={summary['count']}")
    if "sensitivity" in summary:
        lines.append(f"sensitivity={summary['sensitivity']:.4f}; specificity={summary['specificity']:.4f}")
    lines.append("confusion matrix (rows: true, columns: predicted " + ", ".join(names) + "):")
    lines.extend("  " + " ".join(f"{count:>6d}" for count in row) for row in summary["confusion_matrix"])
    return "\n".join(lines)


def combine_probabilities(fit_scores: np.ndarray, fit_labels: Sequence[int], scores: np.ndarray) -> np.ndarray:
    """Combines several models' positive-class probabilities by logistic regression (Stanford's MRNet).

    The regression is fitted on ``fit_scores`` of exams none of the models trained on (their
    validation exams), then applied to ``scores``: fitting on the exams evaluated would report an
    optimistic result.

    Args:
        fit_scores: (n_fit, models) probabilities of the positive class on the fitting exams.
        fit_labels: (n_fit,) 0/1 labels of the fitting exams (both classes needed).
        scores: (n, models) probabilities to combine, same model order.

    Returns:
        (n,) combined positive-class probabilities.
    """
    fit_scores = np.asarray(fit_scores, np.float64)
    scores = np.asarray(scores, np.float64)
    if fit_scores.ndim != 2 or scores.ndim != 2 or fit_scores.shape[1] != scores.shape[1]:
        raise ValueError(f"fit_scores {fit_scores.shape} and scores {scores.shape} need one column per model")
    if len(np.unique(fit_labels)) < 2:
        raise ValueError("the fitting exams hold one class only; a combination cannot be fitted")
    regression = LogisticRegression().fit(fit_scores, np.asarray(fit_labels))
    return regression.predict_proba(scores)[:, 1]
