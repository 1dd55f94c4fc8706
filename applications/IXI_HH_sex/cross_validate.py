"""Cross-validated sex classification: one model folder per fold, on out-of-fold predictions.

Train each fold with ``train.py --fold k --num_folds K`` (same ``--fold_seed`` and CSV), one model
folder each; then this predicts every fold's held-out subjects with that fold's model, checks that
each subject was predicted exactly once, and prints the metrics pooled over all subjects and as mean
and spread over folds (ROC AUC and accuracy)::

    metric  pooled  fold_mean  fold_std  folds

Example:
    for k in 0 1 2 3 4; do python applications/IXI_HH_sex/train.py --model_path models/sex_fold$k --fold $k \\
        --data_csv data/IXI_HH/demographic_HH.csv; done
    python applications/IXI_HH_sex/cross_validate.py \\
        --model_paths models/sex_fold0,models/sex_fold1,models/sex_fold2,models/sex_fold3,models/sex_fold4
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from dltk2.apps import ixi_hh_cli
from dltk2.cli import run

TARGET = "sex"
ixi_hh_cli.define_cross_validation_flags()


def main(argv):
    del argv
    ixi_hh_cli.cross_validation_main(TARGET)


if __name__ == "__main__":
    run(main)
