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

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings
from dltk2.networks import BACKBONE_NAMES

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.")
flags.DEFINE_string("data_dir", None, "Folder with <name>_train-*.tfrecord (and _validation-*).")
flags.DEFINE_string("data_name", "bodypart", "Shard name prefix (tf_convert_data.py's --output_name).")
flags.DEFINE_enum("backbone", "EfficientNetV2B0", sorted(BACKBONE_NAMES), "keras.applications backbone.")
flags.DEFINE_string("weights", None, "Backbone weights: a local .h5/.weights.h5 file, 'imagenet', or none.")
flags.DEFINE_integer("image_size", 224, "Input size (pixels, square; aspect kept with padding).")
flags.DEFINE_list("head_widths", ["256"], "Dense head widths.")
flags.DEFINE_float("dropout", 0.3, "Dropout in the head.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("max_steps", 2000, "Total optimizer steps.")
flags.DEFINE_integer("steps_per_epoch", 100, "Steps between checkpoints and validation.")
flags.DEFINE_integer("batch_norm_batches", 8, "Training batches on which batch-norm statistics are re-estimated "
                     "before each validation and checkpoint (0: Keras' moving averages only).")
flags.DEFINE_integer("seed", 0, "Shuffle seed.")
flags.DEFINE_integer("fold", None, "Cross-validation: train on every fold of the record set but k and validate on "
                     "fold k (convert with --need_split folds); one model folder per fold.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_dir"])


def main(argv):
    del argv
    from dltk2.apps import bodypart

    bodypart.run_training(run_settings(), from_flags(bodypart.TrainingConfig))


if __name__ == "__main__":
    run(main)
