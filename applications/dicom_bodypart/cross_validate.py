"""Cross-validated body-part classification: one model folder per fold, scored on out-of-fold predictions.

Convert with ``tf_convert_data.py --need_split folds --num_folds K``, train each fold with ``train.py --fold k`` (one model folder each); then
this classifies every fold's images with the model that validated on them (never trained on them),
checks that each image was predicted exactly once, and prints ROC AUC (one-vs-rest, macro over the seven classes) and accuracy pooled
over all images and as mean and spread over folds::

    metric  pooled  fold_mean  fold_std  folds

``scripts/export_ensemble.py`` then makes one SavedModel of the folds (probabilities averaged, their
spread across folds as ``probabilities_std``).

Example:
    python applications/dicom_bodypart/tf_convert_data.py --data_dir data/fetched --output_dir data/folds \\
        --need_split folds --num_folds 5
    for k in 0 1 2 3 4; do python applications/dicom_bodypart/train.py --data_dir data/folds \\
        --model_path models/bodypart_fold$k --fold $k; done
    python applications/dicom_bodypart/cross_validate.py --model_paths models/bodypart_fold0,...,models/bodypart_fold4
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_cross_validation_flags, print_table, run

FLAGS = flags.FLAGS
define_cross_validation_flags("id, label, probability_<class>, predicted, fold")


def main(argv):
    del argv
    from dltk2.apps.classification import cross_validate_record_set

    print_table(cross_validate_record_set(FLAGS.model_paths, FLAGS.output_csv))


if __name__ == "__main__":
    run(main)
