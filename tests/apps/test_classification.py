"""The deploy report of a classifier: printed table, files and plots from a table of predictions."""

import json

import cv2
import numpy as np
import pandas as pd

from dltk2.apps.classification import report_classification
from dltk2.evaluation import classification_summary


def test_report_writes_the_summary_the_table_and_the_plots(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 30)
    positive = np.clip(0.3 * labels + rng.uniform(0, 0.7, 30), 0, 1)
    table = pd.DataFrame({"id": [f"c{i}" for i in range(30)], "label": labels,
                          "probability_normal": 1 - positive, "probability_abnormal": positive})
    history = pd.DataFrame({"epoch": [0, 1], "loss": [0.9, 0.5], "val_loss": [1.0, 0.7]})
    summary = report_classification(table, ["normal", "abnormal"], tmp_path, "valid set", {"stage 1": history},
                                    extra={"seconds_per_exam": 0.25})
    expected = classification_summary(labels, np.stack([1 - positive, positive], axis=1), ["normal", "abnormal"])
    assert summary == {**expected, "seconds_per_exam": 0.25}
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions.csv"), table)
    for name in ("confusion_matrix.png", "roc_curve.png", "training_curves.png"):
        assert cv2.imread(str(tmp_path / name)) is not None, name
    printed = capsys.readouterr().out
    assert printed.startswith("valid set: 30 cases, seconds_per_exam=0.250\n") and "roc_auc=" in printed


def test_one_class_only_has_no_roc_plot(tmp_path):
    table = pd.DataFrame({"label": [1, 1], "probability_normal": [0.2, 0.6], "probability_abnormal": [0.8, 0.4]})
    summary = report_classification(table, ["normal", "abnormal"], tmp_path, "test")
    assert summary["roc_auc"] is None and not (tmp_path / "roc_curve.png").exists()
    assert (tmp_path / "confusion_matrix.png").exists() and not (tmp_path / "training_curves.png").exists()
