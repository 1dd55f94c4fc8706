"""The MRNet knee-MRI workflow: r3d_18 trained with progressive resizing, evaluated per plane and combined.

1. The exams of MRNet's ``train`` split are divided by exam into training and validation
   (``validation_fraction``, stratified, seeded; or, with ``fold``, fold k of ``num_folds`` by exam,
   stratified, :mod:`dltk2.cross_validation`); only then are the minority class's exams of the
   training part repeated until both classes are equal. ``splits.csv`` lists every row used.
2. Stage by stage (``stage_sizes`` at ``depth`` slices) the same weights train at a growing input size
   (:func:`dltk2.training.train_progressively`), each stage optionally head first
   (``freeze_epochs``); batches augmented in the graph. The best checkpoint by validation AUC over all
   stages is exported as a :class:`dltk2.inference.SeriesClassifier`.

``applications/mrnet_knee/train.py`` and ``deploy.py`` turn their flags into :class:`TrainingConfig`
and :func:`evaluate`'s arguments; ``cross_validate.py`` calls :func:`cross_validate` on the folds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dltk2.errors import DataError
from dltk2.training.run import RunSettings


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own (its flags; defaults for the real data on a GPU)."""

    data_dir: str | None = None
    exam_list: str | None = None
    task: str = "abnormal"
    plane: str = "sagittal"
    stage_sizes: list[int] | None = None
    stage_epochs: list[int] | None = None
    depth: int = 20
    freeze_epochs: int = 0
    steps_per_epoch: int = 100
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.0
    validation_fraction: float = 0.15
    weights: str | None = None
    augment: bool = True
    cache: bool = False
    seed: int = 0
    fold: int | None = None
    num_folds: int = 5

    def __post_init__(self) -> None:
        self.stage_sizes = [int(size) for size in (self.stage_sizes or [112, 224])]
        epochs = [int(e) for e in (self.stage_epochs or [10, 5])]
        if len(epochs) == 1:
            epochs *= len(self.stage_sizes)
        if len(epochs) != len(self.stage_sizes):
            raise DataError(f"--stage_epochs has {len(epochs)} entries for {len(self.stage_sizes)} --stage_sizes")
        self.stage_epochs = epochs


def load_exams(data_dir: str | None, exam_list: str | None, split: str, task: str, plane: str) -> pd.DataFrame:
    """Rows ``id, path, label`` of MRNet's ``split`` (``train`` / ``valid``), or of an exam list CSV."""
    from dltk2.datasets import mrnet

    if exam_list:
        return mrnet.load_exam_list(exam_list)
    if not data_dir:
        raise DataError("give a data folder (MRNet's layout, --data_dir) or an exam list "
                        "(a CSV of path,label, --exam_list)")
    return mrnet.load_exams(data_dir, split, task, plane)


def training_dataset(exams: pd.DataFrame, depth: int, size: int, batch_size: int, seed: int, augment: bool,
                     cache: bool):
    """Endless shuffled, augmented batches of (series, label) from the (oversampled) training rows."""
    import functools

    from dltk2.batch_augmentation import augment_volume_batch
    from dltk2.datasets import mrnet

    augmentation = functools.partial(augment_volume_batch, seed=seed) if augment else None
    return mrnet.series_dataset(exams, depth, size, batch_size, training=True, seed=seed, augment=augmentation,
                                cache=cache)


def evaluation_dataset(exams: pd.DataFrame, depth: int, size: int, batch_size: int, cache: bool = False,
                       with_ids: bool = False):
    """One pass of (series, label[, id]) batches in order."""
    from dltk2.datasets import mrnet

    return mrnet.series_dataset(exams, depth, size, batch_size, cache=cache, with_ids=with_ids)


def compile_model(model, learning_rate: float, steps: int, weight_decay: float) -> None:
    import keras

    from dltk2.metrics import PositiveClassAUC

    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PositiveClassAUC()])


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Splits, oversamples, trains stage by stage (resuming), exports the best checkpoint. Returns the folder."""
    import functools

    from dltk2.cross_validation import fold_split
    from dltk2.datasets import mrnet
    from dltk2.inference import SeriesClassifier
    from dltk2.io.atomic import write_csv_atomically
    from dltk2.networks.resnet import r3d_18
    from dltk2.run_config import RunConfig
    from dltk2.training import TrainingRun, best_checkpoint, train_progressively

    sizes, epochs = config.stage_sizes, config.stage_epochs
    exams = load_exams(config.data_dir, config.exam_list, "train", config.task, config.plane)
    if config.fold is None:
        train_exams, validation_exams = mrnet.split_exams(exams, config.validation_fraction, config.seed)
        split = {}
    else:
        train_exams, validation_exams = fold_split(exams, config.fold, config.num_folds, "id", "label", config.seed)
        train_exams, validation_exams = train_exams.reset_index(drop=True), validation_exams.reset_index(drop=True)
        split = {"fold": config.fold, "num_folds": config.num_folds, "fold_seed": config.seed}
    oversampled = mrnet.oversample_minority(train_exams, config.seed)
    run = TrainingRun(settings)
    write_csv_atomically(mrnet.splits_table([("train", oversampled), ("validation", validation_exams)]),
                         run.folder.splits)
    counts = train_exams["label"].value_counts().sort_index().to_dict()
    print(f"{len(train_exams)} training exams {counts}, oversampled to {len(oversampled)}; "
          f"{len(validation_exams)} validation exams; precision {run.policy}; {run.replicas} replica(s)")
    run_config = run.write_config(RunConfig(
        application="mrnet_knee", task="classification", target=config.task,
        example_size=[config.depth, sizes[-1], sizes[-1]], intensity={"method": "whitening"},
        class_names=list(mrnet.CLASSES),
        data={"data": str(Path(config.exam_list or config.data_dir).resolve()), "plane": config.plane,
              "data_dir": config.data_dir and str(Path(config.data_dir).resolve()),
              "exam_list": config.exam_list and str(Path(config.exam_list).resolve()), **split},
        training={"stage_sizes": sizes, "stage_epochs": epochs, "seed": config.seed}))

    def datasets(input_shape):
        depth, size = input_shape[0], input_shape[1]
        return (training_dataset(oversampled, depth, size, config.batch_size, config.seed, config.augment,
                                 config.cache),
                evaluation_dataset(validation_exams, depth, size, config.batch_size, cache=config.cache))

    with run.strategy.scope():
        model = r3d_18((config.depth, sizes[0], sizes[0], 1), len(mrnet.CLASSES), dropout=config.dropout)
        if config.weights:
            model.load_weights(config.weights, skip_mismatch=True)
            print(f"weights from {config.weights} (layers of another shape, such as another head, skipped)")
        stages = [{"input_shape": (config.depth, size, size, 1), "epochs": stage_epochs,
                   "freeze_epochs": config.freeze_epochs, "learning_rate": config.learning_rate}
                  for size, stage_epochs in zip(sizes, epochs)]
        compile_fn = functools.partial(compile_model, weight_decay=config.weight_decay)
        _, best = train_progressively(model, stages, compile_fn, datasets, run.path, config.steps_per_epoch,
                                      head_layers=("fc",), monitor="val_auc", mode="max",
                                      verbose=run.keras_verbosity)
    final = best_checkpoint(run.path)
    print(f"best validation AUC {best:.4f}: {final}")
    model = run.trained_model(path=final)
    depth, size = model.input_shape[1], model.input_shape[2]
    run.folder.write_config(run_config.updated(example_size=[depth, size, size], training={
        "best_checkpoint": str(final.relative_to(run.path)), "best_validation_auc": best}))
    if settings.export:
        run.export(SeriesClassifier(model, depth, size, mrnet.CLASSES), note=f" (input {depth}x{size}x{size})")
    return run.path


def predict(model_path: Path, exams: pd.DataFrame, mirror_axes: Sequence[int] = (), explained=None) -> pd.DataFrame:
    """Each exam's class probabilities from the model folder's predictor (its exported serving function).

    ``mirror_axes``: test-time mirroring (0 slices, 1 rows, 2 columns); () keeps the folder's setting.
    ``explained``: a :class:`dltk2.explanations.PositiveCases` offered every exam (its Grad-CAM map
    on the series' (slices, rows, columns) grid is written as NIfTI, 1 mm voxels: the ``.npy`` series
    carry no geometry); the seconds are the classification's alone.
    """
    from dltk2.datasets import mrnet
    from dltk2.inference import load_predictor, mirror_override

    classifier = load_predictor(model_path, **mirror_override(mirror_axes))
    classes = classifier.class_names
    rows = []
    for exam in exams.itertuples():
        started = time.perf_counter()
        series = mrnet.read_series(exam.path)
        result = classifier.classify(series)
        seconds = time.perf_counter() - started
        if explained is not None:
            explained.offer(classifier, exam.id, series, result, int(exam.label))
        rows.append({"id": exam.id, "label": int(exam.label),
                     **{f"probability_{name}": float(p) for name, p in zip(classes, result["probabilities"])},
                     "probability_std": float(result["probabilities_std"][1]),
                     "predicted": classes[int(result["class_id"])],
                     "seconds": seconds})
    return pd.DataFrame(rows)


def cross_validate(model_paths: Sequence[str | Path], output_csv: str | Path | None = None) -> pd.DataFrame:
    """The cross-validated ROC AUC and accuracy of one model folder per fold, on out-of-fold predictions.

    Each fold's model classifies the exams it held out (its ``splits.csv``); the predictions are
    joined, each exam checked to be predicted exactly once and every exam of the training data covered,
    and summarised pooled and as mean and spread over folds (:func:`dltk2.cross_validation.summarise_folds`;
    the score is the positive class's probability).

    Raises:
        DataError: Folders that are not the folds 0..k-1 of one cross-validation (same folds, seed,
            data, task and plane).
    """
    from dltk2.cross_validation import folds_of_one_cross_validation, out_of_fold, summarise_folds
    from dltk2.datasets import mrnet
    from dltk2.io.atomic import write_csv_atomically
    from dltk2.model_folder import ModelFolder

    folds = folds_of_one_cross_validation(model_paths, ("num_folds", "fold_seed", "data", "plane"))
    targets = {ModelFolder(path).read_config().target for path, _ in folds}
    if len(targets) != 1:
        raise DataError(f"{', '.join(map(str, model_paths))}: folds of different tasks {sorted(targets)}")
    positive = f"probability_{mrnet.CLASSES[1]}"
    tables = [predict(Path(path), mrnet.held_out_exams(path)).rename(columns={positive: "score"})
              [["id", "label", "score", "predicted"]] for path, _ in folds]
    data = folds[0][1]
    exams = load_exams(data.get("data_dir"), data.get("exam_list"), "train", targets.pop(), data["plane"])
    table = out_of_fold(tables, "id", expected_ids=exams["id"])
    if output_csv is not None:
        write_csv_atomically(table, output_csv, float_format="%.6f")
    return summarise_folds(table, "classification")


def classify_series(model_path: str | Path, folders: Sequence[str | Path], sr_dir: str | Path | None = None,
                    salt: str | None = None) -> pd.DataFrame:
    """deploy.py with ``--images``: DICOM series folders of one plane classified, each reported as a DICOM SR.

    The finding follows the model's target (:data:`dltk2.io.dicom_objects.MRNET_CONCEPTS`): normal or
    abnormal, or a tear present or absent; the series' images are the report's evidence.
    """
    from dltk2.apps.classification import classify_scans, read_series_scan
    from dltk2.io.dicom_objects import MRNET_CONCEPTS
    from dltk2.model_folder import ModelFolder

    concept, values = MRNET_CONCEPTS[ModelFolder(model_path).read_config().target]
    return classify_scans(model_path, folders, values, sr_dir, salt, concept, read=read_series_scan)


def training_histories(model_path: Path) -> dict:
    """Every stage's and part's history.csv, in the order they ran."""
    paths = sorted(model_path.glob("stage*/*/history.csv"), key=lambda p: (p.parent.parent.name.split("_")[0],
                                                                          p.parent.name != "frozen"))
    return {f"{p.parent.parent.name} {p.parent.name}": pd.read_csv(p) for p in paths if p.stat().st_size}


def evaluate(model_paths: Sequence[str | Path], data_dir: str | None, exam_list: str | None, split: str = "valid",
             output_dir: str | Path | None = None, mirror_axes: Sequence[int] = (), explain: int = 4) -> Path:
    """Evaluates one model, or one per plane combined (Stanford's MRNet), on ``split``; returns the output folder.

    Each model's table, metrics and plots go to ``output_dir`` (default ``<first model>/evaluation``),
    per plane when there are several; their abnormal probabilities are combined by a logistic
    regression fitted on the models' own held-out validation exams (``splits.csv``), never on the
    exams evaluated, and reported under ``combined/``. ``mirror_axes``: test-time mirroring of every
    model (0 slices, 1 rows, 2 columns). The first ``explain`` exams each model predicts positive are
    explained (:class:`dltk2.explanations.PositiveCases`): overlays in its report, maps as NIfTI in
    its ``saliency/``.
    """
    from dltk2.apps.classification import report_classification
    from dltk2.explanations import PositiveCases
    from dltk2.datasets import mrnet
    from dltk2.evaluation import combine_probabilities
    from dltk2.model_folder import ModelFolder

    paths = [Path(p) for p in model_paths]
    if not paths:
        raise DataError("give --model_path, or --model_paths with one model per plane")
    configs = [ModelFolder(path).read_config() for path in paths]
    classes = configs[0].class_names
    output_root = ModelFolder(paths[0]).output_dir(output_dir)
    tables = {}
    for path, config in zip(paths, configs):
        plane = config.data["plane"]
        exams = load_exams(data_dir, exam_list, split, config.target, plane)
        output_dir = output_root / plane if len(paths) > 1 else output_root
        explained = PositiveCases(output_dir, explain, classes)
        tables[plane] = predict(path, exams, mirror_axes, explained)
        table = tables[plane]
        report_classification(table, classes, output_dir, f"{plane}, {split} set",
                              training_histories(path), extra={"seconds_per_exam": float(table["seconds"].mean())},
                              model_path=path, explanations=explained.explanations)
    if len(paths) > 1:
        planes = list(tables)
        fit = [mrnet.held_out_exams(path) for path in paths]
        if any(set(f["id"]) != set(fit[0]["id"]) for f in fit):
            raise DataError("the models were validated on different exams (train them with the same --seed and data)")
        fit_scores = np.stack([predict(path, f.sort_values("id"))["probability_abnormal"]
                               for path, f in zip(paths, fit)],
                              axis=1)
        fit_labels = fit[0].sort_values("id")["label"].to_numpy()
        ids = tables[planes[0]]["id"]
        scores = np.stack([tables[p].set_index("id").loc[ids, "probability_abnormal"].to_numpy() for p in planes],
                          axis=1)
        combined = combine_probabilities(fit_scores, fit_labels, scores)
        table = pd.DataFrame({"id": ids, "label": tables[planes[0]]["label"],
                              "probability_normal": 1 - combined, "probability_abnormal": combined})
        table["predicted"] = np.where(combined >= 0.5, classes[1], classes[0])
        report_classification(table, classes, output_root / "combined", f"{'+'.join(planes)} combined, {split} set",
                              model_path=paths[0])
    print(f"wrote predictions.csv, metrics.json, the plots and report.html under {output_root}")
    return output_root
