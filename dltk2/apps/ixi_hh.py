"""What the IXI_HH applications (sex classification, age regression) share: training and deploy.

An application chooses the target, the network's head and loss, and how a prediction is printed;
everything else (reading, splitting, resumable training, export, crop-averaged deployment) is here,
so both applications behave the same way. No flags are read here: the command line builds
:class:`TrainingConfig` and :class:`DeployConfig` (:mod:`dltk2.apps.ixi_hh_cli`); a notebook can too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd

import keras

from dltk2.datasets import ixi
from dltk2.inference import CropAveragingPredictor, load_predictor, mirror_override
from dltk2.io.image import read_array, read_image_information, read_voxels
from dltk2.io.orientation import axis_codes
from dltk2.io.reader import Mode
from dltk2.model_folder import ModelFolder
from dltk2.networks.resnet import resnet_3d
from dltk2.run_config import RunConfig
from dltk2.training import RunSettings, TrainingRun, learning_rate_schedule

CLASS_NAMES = {"sex": ["male", "female"], "age": []}


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own (:class:`dltk2.training.RunSettings`); DLTK's defaults."""

    data_csv: str
    data_dir: str | None = None
    spacing_mm: float = 2.0
    num_train: int = 150
    max_steps: int = 50000
    steps_per_epoch: int = 100
    batch_size: int = 8
    example_size: list[int] = field(default_factory=lambda: [64, 96, 96])
    n_examples: int = 2
    cache_volumes: bool = False
    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2, 2])
    num_res_units: int = 2
    l2: float = 1e-3
    batch_norm_momentum: float = 0.99
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    adam_epsilon: float = 1e-5
    run_validation: bool = True
    num_crops: int = 4
    fold: int | None = None
    num_folds: int = 5
    fold_seed: int = 0

    def __post_init__(self) -> None:
        self.example_size = [int(s) for s in self.example_size]
        self.filters = [int(f) for f in self.filters]
        self.strides = [int(s) for s in self.strides]


class Head(NamedTuple):
    """What an application puts on the shared trunk."""

    task: str  # "classification" or "regression"
    num_classes: int
    loss: keras.losses.Loss
    metrics: list


def run_training(settings: RunSettings, config: TrainingConfig, target: str, head: Head, name: str,
                 initialise: Callable[[keras.Model, pd.DataFrame], None] | None = None) -> Path:
    """train.py's body: trains (resuming) and exports. Returns the model folder."""
    # The inputs first: a bad CSV or a missing volume is one line before any folder is written.
    subjects = ixi.load_subjects(config.data_csv, target, config.spacing_mm, config.data_dir)
    split = {"num_train": config.num_train} if config.fold is None else \
        {"fold": config.fold, "num_folds": config.num_folds, "fold_seed": config.fold_seed}
    train_subjects, val_subjects = ixi.split_of_run(subjects, target, split)
    run = TrainingRun(settings)
    example_size = config.example_size
    params = {"example_size": example_size, "n_examples": config.n_examples, "target": target}
    reader = ixi.build_reader(example_size, target)
    if config.cache_volumes:
        train_dataset = ixi.cached_training_dataset(train_subjects, example_size, config.n_examples, target,
                                                    config.batch_size)
    else:
        train_dataset = reader.dataset(train_subjects, Mode.TRAIN, params, batch_size=config.batch_size)
    val_dataset = (reader.dataset(val_subjects, Mode.EVAL, params, batch_size=config.batch_size)
                   if config.run_validation else None)

    with run.strategy.scope():
        model = resnet_3d(
            input_shape=example_size + [1], num_classes=head.num_classes, num_res_units=config.num_res_units,
            filters=config.filters, strides=config.strides, l2_regularisation=config.l2, task=head.task, name=name,
            batch_norm_momentum=config.batch_norm_momentum,
        )
        if initialise is not None:
            initialise(model, train_subjects)
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate_schedule(config.learning_rate, config.lr_schedule, config.max_steps),
                epsilon=config.adam_epsilon),
            loss=head.loss,
            metrics=head.metrics,
        )
    first_image = subjects["image"].iloc[0]
    orientation = axis_codes(read_image_information(first_image).geometry.direction)
    run.write_config(RunConfig(
        application=f"IXI_HH_{target}", task=head.task, target=target, example_size=example_size,
        spacing_mm=[config.spacing_mm] * 3, orientation=orientation,
        intensity={"method": "whitening"}, class_names=CLASS_NAMES[target],
        data={"data_csv": str(Path(config.data_csv).resolve()), "data_dir": config.data_dir, **split},
        training={"n_examples": config.n_examples, "max_steps": config.max_steps, "num_crops": config.num_crops}))
    run.announce(f"model: {model.count_params():,} parameters; {len(train_subjects)} training and "
                 f"{len(val_subjects)} validation subjects")
    run.train(model, train_dataset, config.max_steps, config.steps_per_epoch, validation_dataset=val_dataset)

    if settings.export:
        trained = run.trained_model("best" if config.run_validation else "last")
        predictor = CropAveragingPredictor(trained, example_size, config.num_crops, task=head.task,
                                           orientation=orientation, spacing_mm=[config.spacing_mm] * 3)
        example_volume, geometry = read_array(first_image, dtype=np.float32)
        run.export(predictor, {"image": example_volume, "spacing": np.asarray(geometry.spacing),
                               "direction": np.asarray(geometry.direction)})
    return run.path


@dataclass
class DeployConfig:
    """deploy.py's settings."""

    model_path: str
    data_csv: str | None = None
    data_dir: str | None = None
    subjects: str = "validation"
    num_crops: int = 4
    seed: int = 0
    output_csv: str | None = None
    output_dir: str | None = None
    images: list[str] = field(default_factory=list)
    mirror_axes: list[int] = field(default_factory=list)
    sr_dir: str | None = None
    deidentify_key: str | None = None
    explain: int = 4


class Prediction(NamedTuple):
    subject_id: str
    label: str | None
    outputs: dict
    seconds: float
    volume: object = None  # the DICOM series predicted on (dltk2.io.dicom_series.SeriesVolume), if any
    explanation: object = None  # its saliency files (dltk2.explanations.Explanation), if explained


def _predict(predictor, volume, geometry, config: DeployConfig, explain: bool) -> tuple[dict, float]:
    """One scan's outputs through the exported ``predict_with_seed`` (or ``explain_with_seed``: the same
    outputs with the map), and the seconds it took."""
    start = time.perf_counter()
    outputs = predictor.run("explain_with_seed" if explain else "predict_with_seed", image=volume,
                            spacing=geometry.spacing, direction=geometry.direction, seed=config.seed)
    return outputs, time.perf_counter() - start


def _explained(config: DeployConfig, target: str, case_id: str, volume, geometry, outputs: dict,
               label=None):
    """Writes a case's saliency overlay and NIfTI map into the deploy's output folder."""
    from dltk2.explanations import classification_caption, write_explanation

    if target == "sex":
        caption = classification_caption(case_id, CLASS_NAMES["sex"], outputs, label)
    else:
        caption = f"{case_id}: predicted {float(outputs['prediction']):.1f} yrs" + (
            f", true {float(label):.1f}" if label is not None else "")
    output_dir = ModelFolder(config.model_path).output_dir(config.output_dir)
    return write_explanation(output_dir, case_id, volume, outputs["saliency"], geometry, caption)


def predict_subjects(config: DeployConfig, target: str) -> Iterator[Prediction]:
    """deploy.py's loop: each chosen subject's crop-averaged prediction and how long it took.

    The prediction is the model folder's predictor (:func:`dltk2.inference.load_predictor`) and its
    exported ``predict_with_seed`` function itself (``seed`` 0 is ``serving_default``), so TF Serving
    answers what deploy prints. Each volume goes with its spacing and direction: the graph brings it to
    the training orientation and spacing (a folder from before orientations takes the volume alone).
    The first ``config.explain`` subjects go through ``explain_with_seed`` instead (the same outputs
    and a Grad-CAM map; :mod:`dltk2.explanations` writes its overlay and NIfTI map), where the model
    folder's predictor has it.
    """
    run_config = ModelFolder(config.model_path).read_config()
    subjects = ixi.load_subjects(config.data_csv or run_config.data["data_csv"], target, run_config.spacing_mm[0],
                                 config.data_dir or run_config.data.get("data_dir"))
    if config.subjects == "validation":  # those the run held out: DLTK's last rows, or its fold
        _, subjects = ixi.split_of_run(subjects, target, run_config.data)
    predictor = load_predictor(config.model_path, num_crops=config.num_crops, **mirror_override(config.mirror_axes))
    explain = config.explain if "explain_with_seed" in predictor.serving_functions() else 0
    for index, (subject_id, image_path, label) in enumerate(
            subjects[["id", "image", "label"]].itertuples(index=False)):
        volume = read_voxels(image_path)
        geometry = read_image_information(image_path).geometry
        outputs, seconds = _predict(predictor, volume, geometry, config, index < explain)
        explanation = (_explained(config, target, subject_id, volume, geometry, outputs, label)
                       if index < explain else None)
        yield Prediction(subject_id, label, outputs, seconds, explanation=explanation)


def predict_images(config: DeployConfig, target: str) -> Iterator[Prediction]:
    """deploy.py's loop over new scans (``--images``): NIfTI files or DICOM series folders, unlabelled.

    Each goes with its spacing and direction, so a scan in any orientation and resolution reaches
    the model as its training images did (a model folder with an orientation; older folders take
    the volume alone, at the training spacing). All are read before the model is loaded, so a bad
    one stops the deploy at once with its name.
    """
    from dltk2.io.image import read_volume

    scans = [(Path(path).name.split(".")[0], *read_volume(path)) for path in config.images]
    predictor = load_predictor(config.model_path, num_crops=config.num_crops, **mirror_override(config.mirror_axes))
    explain = config.explain if "explain_with_seed" in predictor.serving_functions() else 0
    for index, (name, array, geometry, volume) in enumerate(scans):
        outputs, seconds = _predict(predictor, array, geometry, config, index < explain)
        explanation = _explained(config, target, name, array, geometry, outputs) if index < explain else None
        yield Prediction(name, None, outputs, seconds, volume, explanation)


def write_report(prediction: Prediction, target: str, config: DeployConfig) -> Path | None:
    """A DICOM Structured Report of a DICOM scan's prediction in ``config.sr_dir``; None for other scans.

    Sex: the coded sex (SNOMED CT) and its probability; age: the age in years (UCUM ``a``); the
    model as observer and algorithm, the series' images as evidence.
    """
    if config.sr_dir is None or prediction.volume is None:
        return None
    from pydicom.sr.codedict import codes

    from dltk2.io.dicom_objects import (AGE, FEMALE, MALE, SEX, Finding, ModelIdentity, read_secret,
                                        source_datasets, write_finding_report)

    outputs = prediction.outputs
    if target == "sex":
        female = int(outputs["class_id"]) == 1
        finding = Finding(SEX, FEMALE if female else MALE, float(outputs["probabilities"][int(outputs["class_id"])]))
    else:
        finding = Finding(AGE, measurement=(float(outputs["prediction"]), codes.UCUM.Year))
    salt = read_secret(config.deidentify_key) if config.deidentify_key else None
    return write_finding_report(source_datasets(prediction.volume), [finding],
                                Path(config.sr_dir) / f"{prediction.subject_id}_sr.dcm",
                                ModelIdentity.of_model_folder(config.model_path), salt)


def deploy_images(config: DeployConfig, target: str) -> pd.DataFrame:
    """deploy.py with ``--images``: one line per scan, the predictions CSV, a report per DICOM scan.

    Prints ``id=<scan>; pred=1; prob_female=0.873; run time=0.31 s;`` (sex) or ``id=<scan>; pred=47.20
    yrs; run time=...`` (age), and ``report=<path>`` where a Structured Report was written.
    """
    from dltk2.io.atomic import write_csv_atomically

    rows = []
    for prediction in predict_images(config, target):
        outputs = prediction.outputs
        if target == "sex":
            row = {"id": prediction.subject_id, "pred": int(outputs["class_id"]),
                   "prob_male": float(outputs["probabilities"][0]), "prob_female": float(outputs["probabilities"][1])}
            said = f"pred={row['pred']}; prob_female={row['prob_female']:.3f}"
        else:
            row = {"id": prediction.subject_id, "pred_yrs": float(outputs["prediction"]),
                   "pred_std_yrs": float(outputs["prediction_std"])}
            said = f"pred={row['pred_yrs']:.2f} yrs"
        report = write_report(prediction, target, config)
        saliency = prediction.explanation.saliency_map if prediction.explanation else ""
        row.update({"run_time_s": prediction.seconds, "report": str(report or ""), "saliency": str(saliency)})
        print(f"id={prediction.subject_id}; {said}; run time={prediction.seconds:.2f} s;"
              + (f" report={report};" if report else "") + (f" saliency={saliency};" if saliency else ""),
              flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    write_csv_atomically(table, predictions_csv_path(config, target), float_format="%.6f")
    return table


def cross_validate(model_paths: list[str], target: str, output_csv: str | Path | None = None) -> pd.DataFrame:
    """The cross-validated metrics of one model folder per fold, on out-of-fold predictions.

    Each fold's model predicts its own held-out subjects (seed 0, as its ``serving_default``); the
    predictions are joined, each subject checked to be predicted exactly once and every subject of
    the CSV covered, and summarised: sex by ROC AUC and accuracy, age by mean absolute error, pooled
    and as mean and spread over folds (:func:`dltk2.cross_validation.summarise_folds`).

    Raises:
        DataError: Folders of different fold sets (folds, seed, CSV), or not a fold each.
    """
    from dltk2.cross_validation import folds_of_one_cross_validation, out_of_fold, summarise_folds
    from dltk2.io.atomic import write_csv_atomically

    folds = folds_of_one_cross_validation(model_paths, ("num_folds", "fold_seed", "data_csv"))
    datas = [data for _, data in folds]
    tables = []
    for path, data in folds:
        rows = []
        crops = int(ModelFolder(path).read_config().training.get("num_crops", 4))  # as its serving_default
        for prediction in predict_subjects(DeployConfig(model_path=str(path), num_crops=crops), target):
            outputs = prediction.outputs
            score = float(outputs["probabilities"][1]) if target == "sex" else float(outputs["prediction"])
            rows.append({"id": prediction.subject_id, "label": float(prediction.label), "score": score})
        tables.append(pd.DataFrame(rows))
    subjects = ixi.load_subjects(datas[0]["data_csv"], target, ModelFolder(model_paths[0]).read_config().spacing_mm[0],
                                 datas[0].get("data_dir"))
    table = out_of_fold(tables, "id", expected_ids=subjects["id"])
    summary = summarise_folds(table, "classification" if target == "sex" else "regression")
    if output_csv is not None:
        write_csv_atomically(table, output_csv, float_format="%.6f")
    return summary


def predictions_csv_path(config: DeployConfig, target: str) -> Path:
    return Path(config.output_csv or Path(config.model_path) / f"predictions_{target}.csv")


def report_sex(table: pd.DataFrame, config: DeployConfig, explanations: Sequence = ()) -> dict:
    """deploy.py's evaluation of sex predictions: the classification table, confusion matrix, ROC, report.html.

    Args:
        table: One row per subject with ``true`` (0 male, 1 female), ``prob_male`` and ``prob_female``.
        config: Where the files go (``output_dir``, default ``<model_path>/evaluation``).
        explanations: The explained subjects' saliency files (:class:`dltk2.explanations.Explanation`),
            shown in the report.
    """
    from dltk2.apps.classification import report_classification

    names = CLASS_NAMES["sex"]
    report = table.rename(columns={"true": "label", "prob_male": f"probability_{names[0]}",
                                   "prob_female": f"probability_{names[1]}"})
    output_dir = ModelFolder(config.model_path).output_dir(config.output_dir)
    summary = report_classification(report, names, output_dir, f"{config.subjects} subjects",
                                    model_path=config.model_path, explanations=explanations)
    print(f"wrote the plots and report.html to {output_dir}")
    return summary


def report_age(table: pd.DataFrame, config: DeployConfig, explanations: Sequence = ()) -> dict:
    """deploy.py's evaluation of age predictions: MAE and r, the predicted-against-true plot, report.html.

    Args:
        table: One row per subject with ``pred_yrs`` and ``true_yrs``.
        config: Where the files go (``output_dir``, default ``<model_path>/evaluation``).
        explanations: As :func:`report_sex`'s.
    """
    from dltk2.explanations import add_explanations
    from dltk2.io.atomic import write_bytes_atomically
    from dltk2.plots import plot_regression
    from dltk2.report import HtmlReport, add_run_configuration

    error = table["pred_yrs"] - table["true_yrs"]
    summary = {"subjects": int(len(table)), "mean_absolute_error_yrs": float(error.abs().mean()),
               "mean_error_yrs": float(error.mean()), "pearson_r": float(table["pred_yrs"].corr(table["true_yrs"]))}
    output_dir = ModelFolder(config.model_path).output_dir(config.output_dir)
    plot_regression(table["true_yrs"], table["pred_yrs"], output_dir / "predicted_vs_true.png",
                    title=f"age, {config.subjects} subjects")
    write_bytes_atomically(output_dir / "metrics.json", json.dumps(summary, indent=1).encode())
    report = HtmlReport("IXI_HH age regression: deploy", f"model {config.model_path}")
    report.add_table(pd.DataFrame([summary]), "Summary")
    report.add_image(output_dir / "predicted_vs_true.png", "predicted against true age")
    add_explanations(report, list(explanations))
    report.add_table(table, "Predictions")
    add_run_configuration(report, config.model_path)
    report.write(output_dir / "report.html")
    print(f"wrote the plot, metrics.json and report.html to {output_dir}")
    return summary
