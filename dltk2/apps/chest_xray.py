"""The chest X-ray nodule workflow: transfer learning in the original's two stages.

1. **Head on CNN codes.** The headless backbone runs once over the training and validation images;
   its pooled features are cached in ``<model_path>/features/`` (reused while backbone, size and data
   are unchanged). With random weights, ``adapt_batch_norm`` first re-estimates the backbone's
   batch-norm statistics on training images (AdaBN). A dense head trains on the codes with SGD,
   keeping the epoch of best validation AUC.
2. **Fine-tuning.** The trained head goes onto the same backbone and the whole net (or its last
   ``fine_tune_layers`` layers) trains on augmented images; a fine-tuned checkpoint is kept only if
   it beats the stage-1 model's validation AUC.

``applications/chest_xray_nodule/train.py`` turns its flags into a :class:`TrainingConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dltk2.training.run import RunSettings


@dataclass
class TrainingConfig:
    """The settings of both stages (train.py's flags, with its defaults: the original's)."""

    data_dir: str
    data_name: str = "chest"
    backbone: str = "InceptionV3"
    weights: str | None = None
    image_size: int = 299
    head_widths: list[int] = field(default_factory=lambda: [512, 256, 128])
    dropout: float = 0.5
    batch_size: int = 16
    head_learning_rate: float = 0.01
    momentum: float = 0.9
    head_epochs: int = 30
    fine_tune_steps: int = 300
    fine_tune_learning_rate: float = 0.001
    fine_tune_layers: int = -1
    fine_tune_optimizer: str = "sgd"
    clipnorm: float = 1.0
    adapt_batch_norm: int = 0
    steps_per_epoch: int = 50
    seed: int = 0
    fold: int | None = None

    def __post_init__(self) -> None:
        self.head_widths = [int(width) for width in self.head_widths]


def train_head(config: TrainingConfig, features_model, train_files, val_files, folder, weights: np.ndarray,
               verbose: bool):
    """Stage 1: cache the CNN codes, train the dense head on them, return its best epoch."""
    import keras

    from dltk2.checkpoints import BestCheckpoint, load_checkpoint
    from dltk2.datasets import chest_xray
    from dltk2.feature_cache import cached_features, files_fingerprint
    from dltk2.metrics import PositiveClassAUC
    from dltk2.networks.transfer import dense_head

    classes = chest_xray.CLASSES
    size = config.image_size
    fingerprint = {"backbone": config.backbone, "size": size}
    codes = {}
    for split, files in (("train", train_files), ("validation", val_files)):
        if files:
            dataset = chest_xray.evaluation_dataset(files, size, config.batch_size, with_names=True)
            codes[split] = cached_features(features_model, dataset, folder.file("features", f"{split}.npz"),
                                           {**fingerprint, "files": files_fingerprint(files)})
            print(f"stage 1: {split} features {codes[split].features.shape} "
                  f"({'computed' if codes[split].computed else 'from the cache'})")
    train_codes = codes["train"].features
    head = dense_head(train_codes.shape[1], len(classes), config.head_widths, config.dropout,
                      feature_mean=train_codes.mean(axis=0), feature_variance=train_codes.var(axis=0))
    head.compile(optimizer=keras.optimizers.SGD(config.head_learning_rate, momentum=config.momentum),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PositiveClassAUC()])
    validation = None
    if "validation" in codes:
        validation = (codes["validation"].features, codes["validation"].labels)
    monitor, mode = ("val_auc", "max") if validation is not None else ("loss", "min")
    best = folder.file("head", "best.keras")
    best.parent.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    head.fit(codes["train"].features, codes["train"].labels, sample_weight=weights[codes["train"].labels],
             batch_size=config.batch_size, epochs=config.head_epochs, validation_data=validation, shuffle=True,
             verbose=2 if verbose else 0,
             callbacks=[BestCheckpoint(best, monitor, mode),
                        keras.callbacks.CSVLogger(str(folder.file("head", "history.csv"))),
                        keras.callbacks.TensorBoard(str(folder.logs / "head"))])
    return load_checkpoint(best)


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Both stages (resuming either), then the export. Returns the model folder."""
    import json

    import keras

    from dltk2.checkpoints import load_checkpoint, save_model
    from dltk2.datasets import chest_xray, images2d
    from dltk2.inference import ImageClassifier2D
    from dltk2.io.atomic import replace_atomically, write_bytes_atomically
    from dltk2.io.record_set import check_same_record_set, read_record_set
    from dltk2.metrics import PositiveClassAUC
    from dltk2.networks.transfer import (PreciseBatchNorm, adapt_batch_norm, check_backbone_weights,
                                         feature_extractor, set_trainable_layers, transfer_classifier)
    from dltk2.training.checks import warn_if_constant
    from dltk2.training.loop import finite_input
    from dltk2.run_config import RunConfig
    from dltk2.training import TrainingRun

    classes = chest_xray.CLASSES
    record_set = read_record_set(config.data_dir, config.data_name)
    train_files, val_files, counts = images2d.fold_files(record_set, config.fold)
    weights = images2d.class_weights([label for label, n in counts.items() for _ in range(n)], len(classes))
    check_backbone_weights(config.backbone, config.weights, (config.image_size, config.image_size, 3))
    run = TrainingRun(settings)
    folder = run.folder
    check_same_record_set(folder.path, record_set)
    size = config.image_size
    run.write_config(RunConfig(
        application="chest_xray_nodule", task="classification", example_size=[size, size],
        intensity={"method": "min_max"}, class_names=list(classes),
        data={"data_dir": str(Path(config.data_dir).resolve()), "data_name": config.data_name,
              "record_set": record_set.manifest["set_id"], **images2d.fold_of_record_set(record_set, config.fold)},
        training={"backbone": config.backbone, "weights": config.weights, "class_weights": weights.tolist(),
                  "head_widths": config.head_widths, "fine_tune_steps": config.fine_tune_steps}))
    run.announce(f"training images per class: { {classes[c]: n for c, n in sorted(counts.items())} }")

    with run.strategy.scope():
        features_model = feature_extractor(config.backbone, (size, size, 1), config.weights)
        backbone_file = folder.file("backbone.weights.h5")
        if backbone_file.exists():  # a resumed run: the backbone the cached features and the head came from
            features_model.load_weights(backbone_file)
        else:
            if config.adapt_batch_norm:
                batches = chest_xray.evaluation_dataset(train_files, size, config.batch_size)
                used = adapt_batch_norm(features_model, batches, config.adapt_batch_norm)
                print(f"batch-norm statistics re-estimated on {used} training batches")
            replace_atomically(features_model.save_weights, backbone_file)
        stage1_file = folder.checkpoints / "stage1.keras"
        if stage1_file.exists():
            print(f"stage 1: done before ({stage1_file})")
            head = load_checkpoint(folder.file("head", "best.keras"))
        else:
            head = train_head(config, features_model, train_files, val_files, folder, weights, settings.verbose)
        classifier = transfer_classifier(config.backbone, (size, size, 1), len(classes), features=features_model,
                                         head=head)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PositiveClassAUC()]
        classifier.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           weighted_metrics=metrics)
        validation = chest_xray.evaluation_dataset(val_files, size, config.batch_size) if val_files else None
        if not stage1_file.exists():  # its score first: stage1.keras is what marks stage 1 as done
            with finite_input():
                score = classifier.evaluate(validation, return_dict=True, verbose=0) if validation else {}
            write_bytes_atomically(folder.file("head", "stage1_validation.json"), json.dumps(score).encode())
            stage1_file.parent.mkdir(parents=True, exist_ok=True)
            save_model(classifier, stage1_file)
        stage1_score = json.loads(folder.file("head", "stage1_validation.json").read_text())
        print("stage 1 (head on cached features): validation " +
              ", ".join(f"{k}={v:.4f}" for k, v in stage1_score.items()))

        final = stage1_file
        if config.fine_tune_steps > 0:
            set_trainable_layers(classifier.get_layer("backbone"),
                                 None if config.fine_tune_layers < 0 else config.fine_tune_layers)
            clip = {"clipnorm": config.clipnorm} if config.clipnorm > 0 else {}
            optimizer = (keras.optimizers.SGD(config.fine_tune_learning_rate, momentum=config.momentum, **clip)
                         if config.fine_tune_optimizer == "sgd"
                         else keras.optimizers.Adam(config.fine_tune_learning_rate, **clip))
            classifier.compile(optimizer=optimizer,
                               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                               weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                                                 PositiveClassAUC()])
            dataset = chest_xray.training_dataset(train_files, size, config.batch_size, weights, config.seed)
            print(f"stage 2: fine-tuning {len(classifier.trainable_weights)} weight tensors for "
                  f"{config.fine_tune_steps} steps")
            # Every layer trainable, batch norm included: its statistics re-estimated before each validation.
            extra = [PreciseBatchNorm(dataset.take(8))] if config.fine_tune_layers < 0 else []
            run.train(classifier, dataset, config.fine_tune_steps, config.steps_per_epoch,
                      validation_dataset=validation, monitor="val_auc" if validation else "loss",
                      mode="max" if validation else "min",
                      initial_best=stage1_score.get("auc") if validation else None, extra_callbacks=extra)
            best = folder.best_checkpoint
            if best.exists():
                final = best
        how = ("fine-tuned" if final != stage1_file
               else "stage 1; fine-tuning did not beat it" if config.fine_tune_steps else "stage 1")
        print(f"final model: {final} ({how})")

    trained = run.trained_model(path=final)
    if val_files:
        warn_if_constant(trained, chest_xray.evaluation_dataset(val_files, size, config.batch_size))
    if settings.export:
        run.export(ImageClassifier2D(trained, size, classes))
    return run.path
