"""Trains a 2D body-part classifier (7 classes) on TFRecord shards from tf_convert_data.py.

A ``keras.applications`` backbone (``--backbone``: ResNet50V2 or the EfficientNetV2 family, and the
others of :mod:`dltk2.networks.transfer`) without its top, random weights by default or
``--weights`` (a local weights file, or ``imagenet`` where the machine can download), a new dense
head, class weights against imbalance (scikit-learn's "balanced"), TensorBoard, resumable (an
existing model folder continues; ``--restart`` starts over), best checkpoint by validation accuracy.
When training ends, ``<model_path>/model.keras`` and a SavedModel ``<model_path>/export/<n>/`` are
written; its ``serving_default`` takes one grey image (``image``, float32 (h, w), any range and size).

Example:
    python applications/dicom_bodypart/train.py --model_path models/bodypart --data_dir data/tfrecords
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

import keras
from absl import flags

from dltk2.cli import define_run_flags, run, run_settings
from dltk2.datasets import bodypart
from dltk2.inference import ImageClassifier2D
from dltk2.errors import DataError
from dltk2.io.record_set import check_same_record_set, manifest_path, read_record_set
from dltk2.networks.transfer import BACKBONES, transfer_classifier
from dltk2.run_config import RunConfig
from dltk2.training import TrainingRun

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.")
flags.DEFINE_string("data_dir", None, "Folder with <name>_train-*.tfrecord (and _validation-*).")
flags.DEFINE_string("data_name", "bodypart", "Shard name prefix (tf_convert_data.py's --output_name).")
flags.DEFINE_enum("backbone", "EfficientNetV2B0", sorted(BACKBONES), "keras.applications backbone.")
flags.DEFINE_string("weights", None, "Backbone weights: a local .h5/.weights.h5 file, 'imagenet', or none.")
flags.DEFINE_integer("image_size", 224, "Input size (pixels, square; aspect kept with padding).")
flags.DEFINE_list("head_widths", ["256"], "Dense head widths.")
flags.DEFINE_float("dropout", 0.3, "Dropout in the head.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("max_steps", 2000, "Total optimizer steps.")
flags.DEFINE_integer("steps_per_epoch", 100, "Steps between checkpoints and validation.")
flags.DEFINE_integer("seed", 0, "Shuffle seed.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_dir"])


def main(argv):
    del argv
    data_dir = Path(FLAGS.data_dir)
    record_set = read_record_set(data_dir, FLAGS.data_name)
    train_files, val_files = record_set.files("train"), record_set.files("validation")
    if not train_files:
        raise DataError(f"{manifest_path(data_dir, FLAGS.data_name)}: the record set has no training split "
                        "(convert with --need_split tt_split or tvt_split)")
    counts = record_set.label_counts("train")
    weights = bodypart.class_weights([label for label, n in counts.items() for _ in range(n)])
    run = TrainingRun(run_settings())
    check_same_record_set(run.path, record_set)
    size = FLAGS.image_size
    dataset = bodypart.classification_dataset(train_files, size, FLAGS.batch_size, weights, training=True,
                                              seed=FLAGS.seed)
    validation = bodypart.classification_dataset(val_files, size, FLAGS.batch_size) if val_files else None
    with run.strategy.scope():
        model = transfer_classifier(FLAGS.backbone, (size, size, 1), len(bodypart.CLASSES), weights=FLAGS.weights,
                                    head_widths=[int(w) for w in FLAGS.head_widths], dropout=FLAGS.dropout)
        model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    run.write_config(RunConfig(
        application="dicom_bodypart", task="classification", example_size=[size, size],
        intensity={"method": "min_max"}, class_names=list(bodypart.CLASSES),
        data={"data_dir": str(data_dir.resolve()), "record_set": record_set.manifest["set_id"]},
        training={"backbone": FLAGS.backbone, "class_weights": weights.tolist(), "max_steps": FLAGS.max_steps}))
    run.announce(f"model: {model.count_params():,} parameters ({FLAGS.backbone}, {size}x{size}); training images per "
                 f"class: { {bodypart.CLASSES[c]: n for c, n in sorted(counts.items())} }")
    run.train(model, dataset, FLAGS.max_steps, FLAGS.steps_per_epoch, validation_dataset=validation,
              monitor="val_accuracy" if validation is not None else "loss",
              mode="max" if validation is not None else "min")
    if FLAGS.export:
        run.export(ImageClassifier2D(run.trained_model(), size, bodypart.CLASSES))


if __name__ == "__main__":
    run(main)
