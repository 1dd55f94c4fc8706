"""Trains a 3D ResNet-18 (``r3d_18``) to classify knee MRI exams (MRNet), with progressive resizing.

1. The exams of MRNet's ``train`` split are divided by exam into training and validation
   (``--validation_fraction``, stratified, seeded); only then are the minority class's exams of the
   training part repeated until both classes are equal (``oversample_minority``). ``splits.csv`` lists
   every row used. MRNet's own ``valid`` split stays untouched for ``deploy.py``. With ``--fold k``
   the held-out exams are fold k of ``--num_folds`` instead (by exam, stratified, ``--seed``);
   ``cross_validate.py`` scores the folds out of fold.
2. Stage by stage (``--stage_sizes``, e.g. 112,224 at ``--depth`` 20 slices) the same weights train
   at a growing input size (``dltk2.training.train_progressively``); each stage may first train the
   head alone for ``--freeze_epochs`` (fastai's ``fine_tune``). Batches are augmented (slice-order
   flip, in-plane rotation, contrast, brightness). The best checkpoint by validation AUC, over all
   stages, is the result.
3. Export: ``<model_path>/model.keras`` and the SavedModel ``<model_path>/export/<n>/``, whose
   ``serving_default`` takes one raw series (``series``, float32 (slices, h, w)) and returns
   ``probabilities``, ``class_id`` and ``class_name``.

Mixed precision on GPU (``--precision auto``), ``MirroredStrategy`` across the visible GPUs
(``--batch_size`` is the global batch), TensorBoard under ``<model_path>/**/logs``. Resumable: run the
same command again after a kill.

Example:
    python applications/mrnet_knee/train.py --data_dir data/MRNet-v1.0 --model_path models/mrnet \\
        --stage_sizes 112,224 --depth 20
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings

TASKS = ("abnormal", "acl", "meniscus")  # dltk2.datasets.mrnet's, without importing it (and TensorFlow) for --help
PLANES = ("sagittal", "coronal", "axial")

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "MRNet folder (train/<plane>/NNNN.npy, train-<task>.csv).")
flags.DEFINE_string("exam_list", None, "Instead of --data_dir: a CSV with path,label (and optional id) columns.")
flags.DEFINE_string("model_path", None, "Model folder: stages, checkpoints, logs, splits.csv, exports.")
flags.DEFINE_enum("task", "abnormal", list(TASKS), "Which MRNet label.")
flags.DEFINE_enum("plane", "sagittal", list(PLANES), "Which series of each exam.")
flags.DEFINE_list("stage_sizes", ["112", "224"], "In-plane input size of each progressive-resizing stage.")
flags.DEFINE_list("stage_epochs", ["10", "5"], "Epochs of each stage (one entry, or one per stage).")
flags.DEFINE_integer("depth", 20, "Slices of the network input (series are resampled to it).")
flags.DEFINE_integer("freeze_epochs", 0, "Epochs per stage that train only the head first (with --weights).")
flags.DEFINE_integer("steps_per_epoch", 100, "Steps between checkpoints and validation.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's peak rate (cosine decay over each part of a stage).")
flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
flags.DEFINE_float("dropout", 0.0, "Dropout before the head.")
flags.DEFINE_float("validation_fraction", 0.15, "Share of the training exams held out for model selection.")
flags.DEFINE_string("weights", None, "A Keras weights file of an r3d_18 with one input channel (its head may differ).")
flags.DEFINE_boolean("augment", True, "Augment training batches.")
flags.DEFINE_boolean("cache", False, "Keep resampled series in memory (depth x size^2 x 4 bytes each, per stage).")
flags.DEFINE_integer("seed", 0, "Split, oversampling, shuffle and augmentation seed.")
flags.DEFINE_integer("fold", None, "Cross-validation: train fold k (0..num_folds-1) of a split by exam (stratified "
                     "by label) instead of --validation_fraction's; one model folder per fold, same --seed.")
flags.DEFINE_integer("num_folds", 5, "Folds of --fold's cross-validation.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path"])


def main(argv):
    del argv
    from dltk2.apps import mrnet

    mrnet.run_training(run_settings(), from_flags(mrnet.TrainingConfig))


if __name__ == "__main__":
    run(main)
