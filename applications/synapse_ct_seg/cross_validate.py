"""Cross-validated multi-organ segmentation: per-organ Dice and HD95 on out-of-fold label maps, and postprocessing.

Preprocess with ``--num_folds K`` (``folds.csv``), train each fold with ``train.py --data_csv
folds.csv --fold k`` into its own model folder, then this segments every fold's validation cases
with that fold's model (each case exactly once), prints Dice and HD95 (mm) per organ, pooled over
the cases and as mean and spread over folds, and decides, per organ, whether keeping its largest
connected component raises the mean Dice. ``--ensemble_path`` then exports the folds as one
SavedModel that averages them, with the chosen postprocessing in its graph.

Example:
    python applications/synapse_ct_seg/cross_validate.py --model_paths models/fold0,models/fold1,models/fold2 \\
        --output_dir results/cv --ensemble_path models/synapse_ensemble
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_cross_validation_flags, print_table, run

FLAGS = flags.FLAGS
define_cross_validation_flags()
flags.DEFINE_string("output_dir", None, "Out-of-fold label maps, cross_validation.csv and postprocessing.json.")
flags.DEFINE_string("ensemble_path", None, "Also export the folds as one model folder (their mean, and the "
                    "postprocessing cross-validation chose).")
flags.mark_flags_as_required(["output_dir"])


def main(argv):
    del argv
    from dltk2.apps import synapse
    from dltk2.datasets.synapse import ORGANS
    from dltk2.inference.ensemble import export_ensemble
    from dltk2.inference.postprocessing import chosen_classes

    summary, decision = synapse.cross_validate(FLAGS.model_paths, FLAGS.output_dir)
    print_table(summary)
    keep = chosen_classes(decision)
    print("keep the largest component of: " + (", ".join(ORGANS[c] for c in keep) or "no organ"))
    if FLAGS.ensemble_path:
        saved_model = export_ensemble(FLAGS.model_paths, FLAGS.ensemble_path, keep_largest=keep)
        print(f"exported the ensemble of {len(FLAGS.model_paths)} folds: {saved_model}")


if __name__ == "__main__":
    run(main)
