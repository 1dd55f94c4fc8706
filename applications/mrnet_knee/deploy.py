"""Evaluates trained knee-MRI classifiers on MRNet's validation exams (no oversampling).

Runs the model that train.py exported (``<model_path>/model.keras`` inside the same serving function as
the SavedModel: one raw series in, class probabilities out) over every exam of ``--split`` (MRNet's
``valid`` by default), then prints the per-class precision, recall, f1 and support, accuracy, ROC AUC,
sensitivity, specificity and the confusion matrix, and writes to ``--output_dir``
(default ``<model_path>/evaluation``): ``predictions.csv`` (``id, label, probability_normal,
probability_abnormal, predicted, seconds``), ``metrics.json``, ``confusion_matrix.png``,
``roc_curve.png`` and ``training_curves.png``.

Three planes, as Stanford's MRNet: give one model per plane with ``--model_paths`` (each trained with
its ``--plane``, the same ``--seed`` and data, so the same validation exams). Their abnormal
probabilities are combined by a logistic regression fitted on the models' own held-out validation
exams (``splits.csv``), never on the exams evaluated, and the combined result is reported as well.

Example:
    python applications/mrnet_knee/deploy.py --model_path models/mrnet --data_dir data/MRNet-v1.0
    python applications/mrnet_knee/deploy.py --model_paths models/sag,models/cor,models/ax \\
        --data_dir data/MRNet-v1.0 --output_dir results/three_planes
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

import time
from pathlib import Path

import numpy as np
import pandas as pd
from absl import flags

import reader
from dltk2.apps.classification import report_classification
from dltk2.cli import run
from dltk2.datasets import mrnet
from dltk2.evaluation import combine_probabilities
from dltk2.inference import load_predictor
from dltk2.model_folder import ModelFolder

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder written by train.py (model.keras, run_config.json).")
flags.DEFINE_list("model_paths", [], "Instead of --model_path: one model folder per plane, combined.")
flags.DEFINE_string("data_dir", None, "MRNet folder.")
flags.DEFINE_string("exam_list", None, "Instead of --data_dir: a CSV with path,label columns (one model).")
flags.DEFINE_string("split", "valid", "MRNet split to evaluate.")
flags.DEFINE_string("output_dir", None, "Where results go; default <model_path>/evaluation.")


def predict(model_path: Path, exams: pd.DataFrame) -> pd.DataFrame:
    """Each exam's class probabilities from the model folder's predictor (its exported serving function)."""
    classifier = load_predictor(model_path)
    classes = classifier.class_names
    rows = []
    for exam in exams.itertuples():
        started = time.perf_counter()
        result = classifier.classify(mrnet.read_series(exam.path))
        rows.append({"id": exam.id, "label": int(exam.label),
                     **{f"probability_{name}": float(p) for name, p in zip(classes, result["probabilities"])},
                     "predicted": classes[int(result["class_id"])],
                     "seconds": time.perf_counter() - started})
    return pd.DataFrame(rows)


def training_histories(model_path: Path) -> dict:
    """Every stage's and part's history.csv, in the order they ran."""
    paths = sorted(model_path.glob("stage*/*/history.csv"), key=lambda p: (p.parent.parent.name.split("_")[0],
                                                                          p.parent.name != "frozen"))
    return {f"{p.parent.parent.name} {p.parent.name}": pd.read_csv(p) for p in paths if p.stat().st_size}


def main(argv):
    del argv
    paths = [Path(p) for p in FLAGS.model_paths] or ([Path(FLAGS.model_path)] if FLAGS.model_path else [])
    if not paths:
        raise ValueError("give --model_path, or --model_paths with one model per plane")
    configs = [ModelFolder(path).read_config() for path in paths]
    classes = configs[0].class_names
    output_root = ModelFolder(paths[0]).output_dir(FLAGS.output_dir)
    tables = {}
    for path, config in zip(paths, configs):
        plane = config.data["plane"]
        exams = reader.load_exams(FLAGS.data_dir, FLAGS.exam_list, FLAGS.split, config.target, plane)
        output_dir = output_root / plane if len(paths) > 1 else output_root
        tables[plane] = predict(path, exams)
        table = tables[plane]
        report_classification(table, classes, output_dir, f"{plane}, {FLAGS.split} set",
                              training_histories(path), extra={"seconds_per_exam": float(table["seconds"].mean())})
    if len(paths) > 1:
        planes = list(tables)
        fit = [mrnet.held_out_exams(path) for path in paths]
        if any(set(f["id"]) != set(fit[0]["id"]) for f in fit):
            raise ValueError("the models were validated on different exams (train them with the same --seed and data)")
        fit_scores = np.stack([predict(path, f.sort_values("id"))["probability_abnormal"] for path, f in zip(paths, fit)],
                              axis=1)
        fit_labels = fit[0].sort_values("id")["label"].to_numpy()
        ids = tables[planes[0]]["id"]
        scores = np.stack([tables[p].set_index("id").loc[ids, "probability_abnormal"].to_numpy() for p in planes], axis=1)
        combined = combine_probabilities(fit_scores, fit_labels, scores)
        table = pd.DataFrame({"id": ids, "label": tables[planes[0]]["label"],
                              "probability_normal": 1 - combined, "probability_abnormal": combined})
        table["predicted"] = np.where(combined >= 0.5, classes[1], classes[0])
        report_classification(table, classes, output_root / "combined", f"{'+'.join(planes)} combined, {FLAGS.split} set")
    print(f"wrote predictions.csv, metrics.json and the plots under {output_root}")


if __name__ == "__main__":
    flags.register_validator("model_paths", lambda v: len(v) != 1, "--model_paths needs two or more folders")
    run(main)
