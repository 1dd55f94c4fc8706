"""Cross-validated MRNet classification: one model folder per fold, scored on out-of-fold predictions.

Train each fold with ``train.py --fold k --num_folds K`` (same ``--seed``, data, task and plane), one
model folder each; then this classifies every fold's held-out exams with that fold's model, checks
that each exam was predicted exactly once and every training exam covered, and prints ROC AUC and
accuracy pooled over all exams and as mean and spread over folds::

    metric  pooled  fold_mean  fold_std  folds

``scripts/export_ensemble.py`` then makes one SavedModel of the folds (probabilities averaged, their
spread across folds and mirrorings as ``probabilities_std``).

Example:
    for k in 0 1 2 3 4; do python applications/mrnet_knee/train.py --data_dir data/MRNet-v1.0 \\
        --model_path models/mrnet_fold$k --fold $k; done
    python applications/mrnet_knee/cross_validate.py --model_paths models/mrnet_fold0,models/mrnet_fold1,...
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_cross_validation_flags, print_table, run

FLAGS = flags.FLAGS
define_cross_validation_flags("id, label, score, predicted, fold")


def main(argv):
    del argv
    from dltk2.apps import mrnet

    print_table(mrnet.cross_validate(FLAGS.model_paths, FLAGS.output_csv))


if __name__ == "__main__":
    run(main)
