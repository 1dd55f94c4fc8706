"""The DICOM body-part workflow's training and classification: a keras.applications backbone, 7 classes.

``applications/dicom_bodypart/train.py`` turns its flags into a :class:`TrainingConfig`. The data are
the record set ``tf_convert_data.py`` writes; its training split trains with class weights
(scikit-learn's "balanced"), the validation split picks the best checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dltk2.errors import DataError, first_line
from dltk2.training.run import RunSettings


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own."""

    data_dir: str
    data_name: str = "bodypart"
    backbone: str = "EfficientNetV2B0"
    weights: str | None = None
    image_size: int = 224
    head_widths: list[int] = field(default_factory=lambda: [256])
    dropout: float = 0.3
    batch_size: int = 16
    learning_rate: float = 1e-3
    max_steps: int = 2000
    steps_per_epoch: int = 100
    batch_norm_batches: int = 8
    seed: int = 0
    fold: int | None = None

    def __post_init__(self) -> None:
        self.head_widths = [int(width) for width in self.head_widths]


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Trains (resuming) with class weights, keeps the best checkpoint by validation accuracy, exports."""
    import keras

    from dltk2.datasets import bodypart
    from dltk2.datasets.images2d import class_coverage, fold_files, fold_of_record_set
    from dltk2.inference import ImageClassifier2D
    from dltk2.io.record_set import check_same_record_set, manifest_path, read_record_set
    from dltk2.networks.transfer import PreciseBatchNorm, check_backbone_weights, transfer_classifier
    from dltk2.run_config import RunConfig
    from dltk2.training import TrainingRun
    from dltk2.training.checks import warn_if_constant

    data_dir = Path(config.data_dir)
    record_set = read_record_set(data_dir, config.data_name)
    train_files, val_files, counts = fold_files(record_set, config.fold)
    coverage = class_coverage(counts, bodypart.CLASSES,
                              f"{manifest_path(data_dir, config.data_name)}: the training split's images")
    if coverage:
        print(f"warning: {coverage}", flush=True)
    weights = bodypart.class_weights([label for label, n in counts.items() for _ in range(n)])
    check_backbone_weights(config.backbone, config.weights, (config.image_size, config.image_size, 3))
    run = TrainingRun(settings)
    check_same_record_set(run.path, record_set)
    size = config.image_size
    dataset = bodypart.classification_dataset(train_files, size, config.batch_size, weights, training=True,
                                              seed=config.seed)
    validation = bodypart.classification_dataset(val_files, size, config.batch_size) if val_files else None
    with run.strategy.scope():
        model = transfer_classifier(config.backbone, (size, size, 1), len(bodypart.CLASSES), weights=config.weights,
                                    head_widths=config.head_widths, dropout=config.dropout)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    run.write_config(RunConfig(
        application="dicom_bodypart", task="classification", example_size=[size, size],
        intensity={"method": "min_max"}, class_names=list(bodypart.CLASSES),
        data={"data_dir": str(data_dir.resolve()), "data_name": config.data_name,
              "record_set": record_set.manifest["set_id"], **fold_of_record_set(record_set, config.fold)},
        training={"backbone": config.backbone, "class_weights": weights.tolist(), "max_steps": config.max_steps}))
    run.announce(f"model: {model.count_params():,} parameters ({config.backbone}, {size}x{size}); training images per "
                 f"class: { {bodypart.CLASSES[c]: n for c, n in sorted(counts.items())} }")
    extra = [PreciseBatchNorm(dataset.take(config.batch_norm_batches))] if config.batch_norm_batches > 0 else []
    run.train(model, dataset, config.max_steps, config.steps_per_epoch, validation_dataset=validation,
              monitor="val_accuracy" if validation is not None else "loss",
              mode="max" if validation is not None else "min", extra_callbacks=extra)
    trained = run.trained_model()
    warn_if_constant(trained, validation if validation is not None else dataset.take(4),
                     "validation" if validation is not None else "training")
    if settings.export:
        run.export(ImageClassifier2D(trained, size, bodypart.CLASSES))
    return run.path


def images_from_list(list_file: str, skipped: list[str], datasets: dict | None = None):
    """(name, grey image) for each path listed; DICOM files through the modality and VOI LUTs.

    A file that cannot be read is left out and its one-line reason appended to ``skipped``; each
    DICOM file's dataset goes into ``datasets`` (by name) where one is given.
    """
    from dltk2.datasets import bodypart
    from dltk2.io.dicom import read_dataset

    list_path = Path(list_file)
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: no such list file")
    for line in list_path.read_text(errors="replace").splitlines():
        path = Path(line.strip())
        if not line.strip():
            continue
        try:
            if path.suffix.lower() == ".png":
                image = bodypart.read_png(path)
            else:
                dataset = read_dataset(path)
                image = bodypart.grey_image_from_dicom(dataset, path)
                if datasets is not None:
                    datasets[str(path)] = dataset
        except DataError as error:
            skipped.append(first_line(error))
            continue
        yield str(path), image, -1


def images_from_tfrecords(pattern: str):
    """(file name stored in the record, grey image, class label or -1) for each example of the shards."""
    import tensorflow as tf

    from dltk2.io.tfrecord import image_dataset

    for features in image_dataset(pattern, channels=1, dtype=tf.uint16):
        yield (features["image/filename"].numpy().decode(), features["image"].numpy()[..., 0],
               int(features["image/class/label"]))


def classify(model_path: str | Path, data_path: str, output_file: str | Path, tfrecord: bool = False,
             sr_dir: str | Path | None = None, salt: str | None = None) -> pd.DataFrame:
    """classify_image.py's work: a TSV of class probabilities for every readable image.

    Args:
        model_path: The trained model folder.
        data_path: A text file listing PNG or DICOM paths, or (``tfrecord``) TFRecord shards (a file or glob).
        output_file: The TSV written: ``image, class0 ... class6, predicted_class`` (and
            ``true_class`` where the shards carry labels; then the accuracy, per-class table and
            confusion matrix are printed and written to ``<output_file stem>_evaluation/``).
        tfrecord: ``data_path`` names shards.
        sr_dir: Also write, for each DICOM image listed, ``<sr_dir>/<SOPInstanceUID>_sr.dcm``: a
            Comprehensive SR of the predicted body part (SNOMED CT), its probability and the model,
            referencing the image (:func:`dltk2.io.dicom_objects.write_finding_report`).
        salt: De-identify the reports with this secret.

    Raises:
        DataError: Shards of a record set converted again after the model was trained from that folder.
    """
    import numpy as np

    from dltk2.inference import load_predictor
    from dltk2.io.atomic import write_csv_atomically
    from dltk2.io.dicom_objects import BODY_PART_CODES, Finding, ModelIdentity, write_finding_report
    from dltk2.io.record_set import check_held_out, record_sets_of
    from dltk2.io.tfrecord import glob_shards

    skipped: list[str] = []
    if tfrecord:  # the inputs first, then the model
        shard_sets = record_sets_of(glob_shards(data_path))
        source = images_from_tfrecords(data_path)
    else:
        shard_sets = []
        datasets: dict = {}
        source = images_from_list(data_path, skipped, datasets if sr_dir is not None else None)
    for shard_set in shard_sets:
        check_held_out(model_path, shard_set)
    classifier = load_predictor(model_path)
    classes = classifier.class_names
    model = ModelIdentity.of_model_folder(model_path) if sr_dir is not None else None
    rows, labels, reports = [], [], 0
    for name, image, label in source:
        outputs = classifier.classify(image.astype(np.float32))
        predicted = outputs["class_name"].decode()
        rows.append({"image": name, **{f"class{i}": float(p) for i, p in enumerate(outputs["probabilities"])},
                     "predicted_class": predicted})
        labels.append(label)
        if model is not None and name in datasets:
            dataset = datasets[name]
            finding = Finding(site=BODY_PART_CODES[predicted], probability=float(np.max(outputs["probabilities"])))
            write_finding_report([dataset], [finding], Path(sr_dir) / f"{dataset.SOPInstanceUID}_sr.dcm", model, salt)
            reports += 1
    columns = ["image", *[f"class{i}" for i in range(len(classes))], "predicted_class"]
    table = pd.DataFrame(rows, columns=columns)
    labelled = bool(labels) and min(labels) >= 0
    if labelled:
        table["true_class"] = [classes[label] for label in labels]
    write_csv_atomically(table, output_file, sep="\t", float_format="%.6f")
    print(f"classified {len(table)} images -> {output_file}; predicted: "
          f"{table['predicted_class'].value_counts().to_dict()}")
    for message in skipped:
        print(f"  skipped {message}")
    if sr_dir is not None:
        print(f"wrote {reports} structured reports to {sr_dir}")
    if labelled:
        report_labelled(table, labels, classes, Path(output_file), model_path)
    return table


def report_labelled(table: pd.DataFrame, labels: list[int], classes, output_file: Path,
                    model_path: str | Path | None = None) -> dict:
    """Accuracy, per-class table and confusion matrix of labelled predictions, beside the TSV."""
    from dltk2.apps.classification import report_classification
    from dltk2.datasets.images2d import class_coverage

    present = class_coverage(dict(pd.Series(labels).value_counts()), classes, "the labelled images")
    if present:
        print(f"warning: {present}")
    report = table[["image"]].assign(label=labels, **{f"probability_{name}": table[f"class{index}"]
                                                      for index, name in enumerate(classes)})
    output_dir = output_file.parent / f"{output_file.stem}_evaluation"
    summary = report_classification(report, list(classes), output_dir, "labelled images", model_path=model_path)
    print(f"evaluation: {output_dir}")
    return summary
