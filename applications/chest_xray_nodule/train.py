"""Trains a normal-vs-nodule chest X-ray classifier by transfer learning, in the original's two stages.

1. **Head on CNN codes.** The headless backbone (``--backbone``, ``--weights``) runs once over the
   training and validation images; its pooled features are cached in ``<model_path>/features/``
   (reused while backbone, size and data are unchanged). With random weights, ``--adapt_batch_norm``
   first re-estimates the backbone's batch-norm statistics on training images (AdaBN). A dense head (``--head_widths``, default
   512-256-128, dropout) trains on them with SGD (``--head_learning_rate`` 0.01, batch 16), keeping
   the epoch of best validation AUC.
2. **Fine-tuning.** The trained head goes onto the same backbone and the whole net (or its last
   ``--fine_tune_layers`` layers) trains for ``--fine_tune_steps`` at ``--fine_tune_learning_rate``,
   on augmented images (SGD or Adam, gradient norm clipped). A fine-tuned checkpoint is kept only if it beats the stage-1 model's
   validation AUC; otherwise the stage-1 model is the result.

Resumable: a finished stage 1 is not repeated, and fine-tuning continues from its last epoch. At the
end ``<model_path>/model.keras`` and the SavedModel ``<model_path>/export/<n>/`` are written; its
``serving_default`` takes one grey image (``image``, float32 (h, w), any range and size) and returns
``probabilities``, ``class_id`` and ``class_name``.

Example:
    python applications/chest_xray_nodule/train.py --model_path models/chest --data_dir data/chest_tfrecords
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

import json
from pathlib import Path

import keras
import numpy as np
from absl import flags

import reader
from dltk2.checkpoints import BestCheckpoint, load_checkpoint
from dltk2.cli import define_run_flags, run, run_settings
from dltk2.datasets import chest_xray, images2d
from dltk2.feature_cache import cached_features, files_fingerprint
from dltk2.inference import ImageClassifier2D
from dltk2.io.atomic import write_bytes_atomically
from dltk2.io.record_set import check_same_record_set, read_record_set
from dltk2.metrics import PositiveClassAUC
from dltk2.networks.transfer import (BACKBONES, adapt_batch_norm, dense_head, feature_extractor, set_trainable_layers,
                                     transfer_classifier)
from dltk2.run_config import RunConfig
from dltk2.training import TrainingRun, replace_atomically

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: features, head, checkpoints, logs, exports.")
flags.DEFINE_string("data_dir", None, "Folder with <name>_{train,validation}-*.tfrecord from prepare.py.")
flags.DEFINE_string("data_name", "chest", "Shard name prefix (prepare.py's --output_name).")
flags.DEFINE_enum("backbone", "InceptionV3", sorted(BACKBONES), "keras.applications backbone.")
flags.DEFINE_string("weights", None, "Backbone weights: 'imagenet' (downloaded by Keras), a local weights file, "
                    "or none (random).")
flags.DEFINE_integer("image_size", 299, "Input size (pixels, square; aspect kept with padding).")
flags.DEFINE_list("head_widths", ["512", "256", "128"], "Dense head widths.")
flags.DEFINE_float("dropout", 0.5, "Dropout before each dense layer of the head.")
flags.DEFINE_integer("batch_size", 16, "Batch size of both stages.")
flags.DEFINE_float("head_learning_rate", 0.01, "SGD learning rate of stage 1.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum of both stages.")
flags.DEFINE_integer("head_epochs", 30, "Stage-1 epochs over the cached training features.")
flags.DEFINE_integer("fine_tune_steps", 300, "Stage-2 optimizer steps (0: stop after stage 1).")
flags.DEFINE_float("fine_tune_learning_rate", 0.001, "SGD learning rate of stage 2.")
flags.DEFINE_integer("fine_tune_layers", -1, "Stage 2 trains the backbone's last N layers (-1: all; batch "
                     "normalisation stays frozen unless all are trained).")
flags.DEFINE_enum("fine_tune_optimizer", "sgd", ["sgd", "adam"], "Stage-2 optimizer (SGD with --momentum, or Adam).")
flags.DEFINE_float("clipnorm", 1.0, "Stage-2 gradient norm clipping (0: none).")
flags.DEFINE_integer("adapt_batch_norm", 0, "Before stage 1, re-estimate the backbone's batch-norm statistics on up "
                     "to this many training batches (AdaBN; 0: keep the weights' own). Needed with random weights.")
flags.DEFINE_integer("steps_per_epoch", 50, "Stage-2 steps between checkpoints and validation.")
flags.DEFINE_integer("seed", 0, "Shuffle and augmentation seed.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_dir"])

CLASSES = chest_xray.CLASSES


def train_head(features_model, train_files, val_files, folder, weights: np.ndarray) -> keras.Model:
    """Stage 1: cache the CNN codes, train the dense head on them, return its best epoch."""
    size = FLAGS.image_size
    fingerprint = {"backbone": FLAGS.backbone, "size": size}
    codes = {}
    for split, files in (("train", train_files), ("validation", val_files)):
        if files:
            dataset = reader.evaluation_dataset(files, size, FLAGS.batch_size, with_names=True)
            codes[split] = cached_features(features_model, dataset, folder.file("features", f"{split}.npz"),
                                           {**fingerprint, "files": files_fingerprint(files)})
            print(f"stage 1: {split} features {codes[split].features.shape} "
                  f"({'computed' if codes[split].computed else 'from the cache'})")
    train_codes = codes["train"].features
    head = dense_head(train_codes.shape[1], len(CLASSES), [int(w) for w in FLAGS.head_widths], FLAGS.dropout,
                      feature_mean=train_codes.mean(axis=0), feature_variance=train_codes.var(axis=0))
    head.compile(optimizer=keras.optimizers.SGD(FLAGS.head_learning_rate, momentum=FLAGS.momentum),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PositiveClassAUC()])
    validation = None
    if "validation" in codes:
        validation = (codes["validation"].features, codes["validation"].labels)
    monitor, mode = ("val_auc", "max") if validation is not None else ("loss", "min")
    best = folder.file("head", "best.keras")
    best.parent.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(FLAGS.seed)
    head.fit(codes["train"].features, codes["train"].labels, sample_weight=weights[codes["train"].labels],
             batch_size=FLAGS.batch_size, epochs=FLAGS.head_epochs, validation_data=validation, shuffle=True,
             verbose=2 if FLAGS.verbose else 0,
             callbacks=[BestCheckpoint(best, monitor, mode),
                        keras.callbacks.CSVLogger(str(folder.file("head", "history.csv"))),
                        keras.callbacks.TensorBoard(str(folder.logs / "head"))])
    return load_checkpoint(best)


def main(argv):
    del argv
    record_set = read_record_set(FLAGS.data_dir, FLAGS.data_name)
    train_files = chest_xray.split_files(record_set, "train")
    val_files = record_set.files("validation")
    counts = record_set.label_counts("train")
    weights = images2d.class_weights([label for label, n in counts.items() for _ in range(n)], len(CLASSES))
    run = TrainingRun(run_settings())
    folder = run.folder
    check_same_record_set(folder.path, record_set)
    size = FLAGS.image_size
    run.write_config(RunConfig(
        application="chest_xray_nodule", task="classification", example_size=[size, size],
        intensity={"method": "min_max"}, class_names=list(CLASSES),
        data={"data_dir": str(Path(FLAGS.data_dir).resolve()), "record_set": record_set.manifest["set_id"]},
        training={"backbone": FLAGS.backbone, "weights": FLAGS.weights, "class_weights": weights.tolist(),
                  "head_widths": [int(w) for w in FLAGS.head_widths], "fine_tune_steps": FLAGS.fine_tune_steps}))
    run.announce(f"training images per class: { {CLASSES[c]: n for c, n in sorted(counts.items())} }")

    with run.strategy.scope():
        features_model = feature_extractor(FLAGS.backbone, (size, size, 1), FLAGS.weights)
        backbone_file = folder.file("backbone.weights.h5")
        if backbone_file.exists():  # a resumed run: the backbone the cached features and the head came from
            features_model.load_weights(backbone_file)
        else:
            if FLAGS.adapt_batch_norm:
                used = adapt_batch_norm(features_model, reader.evaluation_dataset(train_files, size, FLAGS.batch_size),
                                        FLAGS.adapt_batch_norm)
                print(f"batch-norm statistics re-estimated on {used} training batches")
            replace_atomically(features_model.save_weights, backbone_file)
        stage1_file = folder.checkpoints / "stage1.keras"
        if stage1_file.exists():
            print(f"stage 1: done before ({stage1_file})")
            head = load_checkpoint(folder.file("head", "best.keras"))
        else:
            head = train_head(features_model, train_files, val_files, folder, weights)
        classifier = transfer_classifier(FLAGS.backbone, (size, size, 1), len(CLASSES), features=features_model,
                                         head=head)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PositiveClassAUC()]
        classifier.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           weighted_metrics=metrics)
        validation = reader.evaluation_dataset(val_files, size, FLAGS.batch_size) if val_files else None
        if not stage1_file.exists():  # its score first: stage1.keras is what marks stage 1 as done
            score = classifier.evaluate(validation, return_dict=True, verbose=0) if validation else {}
            write_bytes_atomically(folder.file("head", "stage1_validation.json"), json.dumps(score).encode())
            stage1_file.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(classifier.save, stage1_file)
        stage1_score = json.loads(folder.file("head", "stage1_validation.json").read_text())
        print("stage 1 (head on cached features): validation " +
              ", ".join(f"{k}={v:.4f}" for k, v in stage1_score.items()))

        final = stage1_file
        if FLAGS.fine_tune_steps > 0:
            set_trainable_layers(classifier.get_layer("backbone"),
                                 None if FLAGS.fine_tune_layers < 0 else FLAGS.fine_tune_layers)
            clip = {"clipnorm": FLAGS.clipnorm} if FLAGS.clipnorm > 0 else {}
            optimizer = (keras.optimizers.SGD(FLAGS.fine_tune_learning_rate, momentum=FLAGS.momentum, **clip)
                         if FLAGS.fine_tune_optimizer == "sgd" else keras.optimizers.Adam(FLAGS.fine_tune_learning_rate, **clip))
            classifier.compile(optimizer=optimizer,
                               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                               weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                                                 PositiveClassAUC()])
            dataset = reader.training_dataset(train_files, size, FLAGS.batch_size, weights, FLAGS.seed)
            print(f"stage 2: fine-tuning {len(classifier.trainable_weights)} weight tensors for "
                  f"{FLAGS.fine_tune_steps} steps")
            run.train(classifier, dataset, FLAGS.fine_tune_steps, FLAGS.steps_per_epoch,
                      validation_dataset=validation, monitor="val_auc" if validation else "loss",
                      mode="max" if validation else "min",
                      initial_best=stage1_score.get("auc") if validation else None)
            best = folder.best_checkpoint
            if best.exists():
                final = best
        how = "fine-tuned" if final != stage1_file else "stage 1; fine-tuning did not beat it" if FLAGS.fine_tune_steps else "stage 1"
        print(f"final model: {final} ({how})")

    if FLAGS.export:
        run.export(ImageClassifier2D(run.trained_model(path=final), size, CLASSES))


if __name__ == "__main__":
    run(main)
