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

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_list("model_paths", None, "One model folder per fold (train.py --fold k), in any order.")
flags.DEFINE_string("output_csv", None, "Also write the out-of-fold predictions (id, label, score, predicted, fold).")
flags.mark_flags_as_required(["model_paths"])


def main(argv):
    del argv
    import pandas as pd

    from dltk2.apps import mrnet

    summary = mrnet.cross_validate(FLAGS.model_paths, FLAGS.output_csv)
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(summary.to_string(index=False))


if __name__ == "__main__":
    run(main)
