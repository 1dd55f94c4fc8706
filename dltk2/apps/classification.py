"""Deploying a classifier: the summary table, the files and the plots, from a table of predictions.

Both 2D chest X-ray and 3D knee MRI deploys end the same way: a table with one row per case (``label``
and one ``probability_<class>`` column per class, plus whatever else identifies the case) becomes the
printed summary (:func:`dltk2.evaluation.format_summary`), ``predictions.csv``, ``metrics.json``, the
PNG plots and ``report.html``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from dltk2.evaluation import classification_summary, format_summary
from dltk2.explanations import add_explanations
from dltk2.io.atomic import write_bytes_atomically, write_csv_atomically
from dltk2.plots import plot_confusion_matrix, plot_roc_curve, plot_training_curves
from dltk2.report import HtmlReport, add_run_configuration


def report_classification(
    table: pd.DataFrame,
    class_names: Sequence[str],
    output_dir: str | Path,
    title: str,
    histories: Mapping[str, pd.DataFrame] | None = None,
    extra: Mapping[str, float] | None = None,
    model_path: str | Path | None = None,
    explanations: Sequence = (),
) -> dict:
    """Prints the summary of ``table`` and writes its files and plots to ``output_dir``.

    Args:
        table: One row per case: ``label`` (class index) and ``probability_<name>`` per class.
        class_names: The classes, in index order.
        output_dir: Receives ``predictions.csv`` (the table), ``metrics.json`` (the summary with
            ``extra``), ``confusion_matrix.png``, ``roc_curve.png`` (binary, both classes present)
            and ``training_curves.png`` (when ``histories`` are given).
        title: First printed line and the ROC plot's title, e.g. ``"test set"``.
        histories: Stage name -> CSVLogger table, for :func:`dltk2.plots.plot_training_curves`.
        extra: Numbers added to the summary (timings), printed after the title.
        model_path: The model folder, whose run configuration ``report.html`` shows.
        explanations: Explained cases' saliency files (:class:`dltk2.explanations.Explanation`):
            their overlays go into ``report.html``.

    ``report.html`` holds all of it on one self-contained page (:mod:`dltk2.report`).

    Returns:
        The summary of :func:`dltk2.evaluation.classification_summary` with ``extra``.
    """
    output_dir = Path(output_dir)
    probabilities = table[[f"probability_{name}" for name in class_names]].to_numpy()
    summary = {**classification_summary(table["label"].to_numpy(), probabilities, class_names), **(extra or {})}
    print(f"{title}: {len(table)} cases" + "".join(f", {key}={value:.3f}" for key, value in (extra or {}).items()))
    print(format_summary(summary))
    write_csv_atomically(table, output_dir / "predictions.csv")
    write_bytes_atomically(output_dir / "metrics.json", json.dumps(summary, indent=1).encode())
    plot_confusion_matrix(summary["confusion_matrix"], class_names, output_dir / "confusion_matrix.png")
    if summary["roc_auc"] is not None and len(class_names) == 2:
        plot_roc_curve(table["label"], probabilities[:, 1], output_dir / "roc_curve.png",
                       title=f"ROC, {title} ({len(table)} cases)")
    if histories:
        plot_training_curves(histories, output_dir / "training_curves.png")
    write_classification_report(summary, table, class_names, output_dir, title, model_path, explanations)
    return summary


def write_classification_report(summary: dict, table: pd.DataFrame, class_names: Sequence[str], output_dir: Path,
                                title: str, model_path: str | Path | None = None, explanations: Sequence = ()) -> Path:
    """``output_dir/report.html``: the summary, the per-class table, the plots present, the explained cases'
    saliency overlays, the predictions."""
    report = HtmlReport(f"Classification: {title}", f"model {model_path}" if model_path else "")
    auc = summary["roc_auc"]
    overall = {"cases": summary["count"], "accuracy": summary["accuracy"], "ROC AUC": "n/a" if auc is None else auc}
    for key in ("sensitivity", "specificity", *(key for key in summary if key.endswith("_s"))):
        if key in summary:
            overall[key] = summary[key]
    report.add_table(pd.DataFrame([overall]), "Summary")
    report.add_table(pd.DataFrame([{"class": name, **row} for name, row in summary["per_class"].items()]),
                     "Per class")
    confusion = pd.DataFrame(summary["confusion_matrix"], columns=[f"predicted {n}" for n in class_names])
    report.add_table(confusion.assign(**{"true": list(class_names)})[["true", *confusion.columns]],
                     "Confusion matrix (rows: true class)")
    report.add_heading("Plots")
    for name, caption in (("confusion_matrix.png", "confusion matrix"), ("roc_curve.png", "ROC curve"),
                          ("training_curves.png", "training curves")):
        if (output_dir / name).exists():
            report.add_image(output_dir / name, caption)
    add_explanations(report, list(explanations))
    report.add_table(table, "Predictions")
    if model_path is not None:
        add_run_configuration(report, model_path)
    return report.write(output_dir / "report.html")


def read_radiograph(path: str | Path):
    """``(grey image, dataset)`` of a radiograph file: PNG (dataset None) or DICOM (modality and VOI LUTs).

    Raises:
        DataError: A missing, truncated or pixel-less file, named.
    """
    from dltk2.datasets.bodypart import grey_image_from_dicom, read_png
    from dltk2.io.dicom import read_dataset

    path = Path(path)
    if path.suffix.lower() == ".png":
        return read_png(path), None
    dataset = read_dataset(path)
    return grey_image_from_dicom(dataset, path), dataset


def read_radiograph_scan(path: str | Path):
    """``(image, sources)`` of a radiograph file: its grey image and, for DICOM, ``[its dataset]``."""
    image, dataset = read_radiograph(path)
    return image, [dataset] if dataset is not None else None


def read_series_scan(path: str | Path):
    """``(volume, sources)`` of a DICOM series folder: float32 (slices, rows, columns) and its files' datasets."""
    from dltk2.io.dicom_objects import source_datasets
    from dltk2.io.dicom_series import read_series

    volume = read_series(path)
    return volume.array, source_datasets(volume)


def classify_scans(model_path: str | Path, paths: Sequence[str | Path], finding_codes: Mapping[str, object],
                   sr_dir: str | Path | None = None, salt: str | None = None, concept: object = None,
                   read=None) -> pd.DataFrame:
    """Classifies scan files with a folder's single-input classifier; a Structured Report per DICOM scan.

    All scans are read before the model is loaded (a bad one stops the run with its name). Prints
    ``<scan>: <class> (p=0.912)[; report=<path>]`` per scan.

    Args:
        model_path: The model folder (its predictor: :class:`dltk2.inference.ImageClassifier2D` or
            :class:`dltk2.inference.SeriesClassifier`).
        paths: The scans.
        finding_codes: Class name -> the coded finding a report states (e.g. SNOMED CT "Nodule").
        sr_dir: Where ``<SOPInstanceUID of the first image>_sr.dcm`` go; None: no reports.
        salt: De-identify the reports with this secret.
        concept: What the finding answers, as a qualitative evaluation ``concept: value``; None:
            the value is the report's own finding (TID 1501's "Finding").
        read: path -> ``(array, DICOM datasets or None)``; default :func:`read_radiograph_scan`
            (one image), :func:`read_series_scan` for DICOM series.

    Returns:
        One row per scan: ``image``, ``probability_<class>`` per class, ``predicted``, ``report``.
    """
    import numpy as np

    from dltk2.inference import load_predictor
    from dltk2.io.dicom_objects import Finding, ModelIdentity, write_finding_report

    read = read or read_radiograph_scan
    scans = [(str(path), *read(path)) for path in paths]
    classifier = load_predictor(model_path)
    model = ModelIdentity.of_model_folder(model_path)
    rows = []
    for name, array, sources in scans:
        outputs = classifier.classify(np.asarray(array, np.float32))
        predicted = classifier.class_names[int(outputs["class_id"])]
        probability = float(np.max(outputs["probabilities"]))
        report = None
        if sr_dir is not None and sources:
            report = write_finding_report(sources, [Finding(concept, finding_codes[predicted], probability)],
                                          Path(sr_dir) / f"{sources[0].SOPInstanceUID}_sr.dcm", model, salt)
        rows.append({"image": name, **{f"probability_{c}": float(p) for c, p in
                                       zip(classifier.class_names, outputs["probabilities"])},
                     "predicted": predicted, "report": str(report or "")})
        print(f"{name}: {predicted} (p={probability:.3f})" + (f"; report={report}" if report else ""), flush=True)
    return pd.DataFrame(rows)


def cross_validate_record_set(model_paths: Sequence[str | Path], output_csv: str | Path | None = None
                              ) -> pd.DataFrame:
    """Cross-validated metrics of 2D classifiers trained ``--fold k`` on one record set's folds.

    Each fold's model classifies the images of its own fold (the one it validated on, never trained
    on); the predictions are joined, each image checked to be predicted exactly once and as many as
    the folds hold, and summarised pooled and as mean and spread over folds: ROC AUC (one-vs-rest,
    macro, for more than two classes) and accuracy (:func:`dltk2.cross_validation.summarise_folds`).

    Args:
        model_paths: One model folder per fold, in any order (body part or chest X-ray).
        output_csv: Also write the out-of-fold table (``id`` the image's file name, ``label``,
            ``probability_<class>``, ``predicted``, ``fold``).

    Raises:
        DataError: Folders that are not the folds 0..k-1 of one record set, or a record set
            converted again since they were trained.
    """
    import numpy as np
    import tensorflow as tf

    from dltk2.cross_validation import folds_of_one_cross_validation, out_of_fold, summarise_folds
    from dltk2.errors import DataError
    from dltk2.inference import load_predictor
    from dltk2.io.record_set import manifest_path, read_record_set
    from dltk2.io.tfrecord import image_dataset

    folds = folds_of_one_cross_validation(model_paths, ("num_folds", "fold_seed", "record_set"))
    data = folds[0][1]
    record_set = read_record_set(data["data_dir"], data["data_name"])
    if record_set.manifest["set_id"] != data["record_set"]:
        raise DataError(f"{manifest_path(data['data_dir'], data['data_name'])}: converted again after the folds "
                        f"were trained (set {data['record_set']}, now {record_set.manifest['set_id']})")
    tables = []
    for path, fold_data in folds:
        classifier = load_predictor(path)
        classes = classifier.class_names
        rows = []
        for features in image_dataset(record_set.files(f"fold{fold_data['fold']}"), channels=1, dtype=tf.uint16):
            outputs = classifier.classify(features["image"].numpy()[..., 0].astype(np.float32))
            rows.append({"id": features["image/filename"].numpy().decode(),
                         "label": int(features["image/class/label"]),
                         **{f"probability_{c}": float(p) for c, p in zip(classes, outputs["probabilities"])},
                         "predicted": classes[int(outputs["class_id"])]})
        tables.append(pd.DataFrame(rows))
    table = out_of_fold(tables, "id")
    expected = sum(record_set.examples(f"fold{k}") for k in range(len(folds)))
    if len(table) != expected:
        raise DataError(f"{manifest_path(data['data_dir'], data['data_name'])}: the folds hold {expected} images, "
                        f"{len(table)} were predicted")
    if output_csv is not None:
        write_csv_atomically(table, output_csv, float_format="%.6f")
    columns = [f"probability_{c}" for c in classes]
    return summarise_folds(table.assign(score=table[columns[-1]]), "classification",
                           probabilities=columns if len(columns) > 2 else ())
