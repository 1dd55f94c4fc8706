"""Exports a cross-validation's fold models as one model folder whose SavedModel averages them.

The folds (each trained with ``train.py --fold k``: IXI sex or age, Synapse, MRNet, chest X-ray,
body part) become one Keras model of their softmax (or values), exported with the first fold's
predictor settings: the same signatures as a single model, so ``deploy.py --model_path <output>`` and TF Serving use it as they
use one. A segmentation averages the folds inside each window; a classifier or regressor keeps each
fold's output, so its ``probabilities_std`` (``prediction_std``) is the spread across crops,
mirrorings and folds together.

Example:
    python scripts/export_ensemble.py --model_paths models/sex_fold0,models/sex_fold1,models/sex_fold2 \\
        --output_path models/sex_ensemble [--mirror_axes 0,1,2]
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_list("model_paths", None, "The folds' model folders.")
flags.DEFINE_string("output_path", None, "The ensemble's model folder.")
flags.DEFINE_list("mirror_axes", [], "Test-time mirroring of the exported predictor: axes 0 (z), 1 (y), 2 (x) "
                  "(for a series, 0 slices).")
flags.mark_flags_as_required(["model_paths", "output_path"])


def main(argv):
    del argv
    from dltk2.inference.ensemble import export_ensemble
    from dltk2.model_folder import ModelFolder

    overrides = {"mirror_axes": [int(a) for a in FLAGS.mirror_axes]} if FLAGS.mirror_axes else {}
    saved_model = export_ensemble(FLAGS.model_paths, FLAGS.output_path, **overrides)
    print(f"exported the ensemble of {len(FLAGS.model_paths)} folds: SavedModel {saved_model}; "
          f"model folder {FLAGS.output_path}: {ModelFolder(FLAGS.output_path).describe_disk_use()}")


if __name__ == "__main__":
    run(main)
