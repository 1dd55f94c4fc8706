"""Segments brain tissue in every subject folder of a CSV and scores it against the reference labels.

For each subject of ``--data_csv`` (DLTK's ``id,subj_folder``), the raw T1, T1_IR and T2_FLAIR go
through the exported SavedModel's own ``serving_default`` (resampling to the training spacing,
whitening, sliding window, labels back): ``OUTPUT/<id>_seg.nii.gz`` on the subject's own grid. With
labels (``LabelsForTesting``), each subject prints::

    Id=9; Dice=0.9322; time=7.14 secs; output_path=OUTPUT/9_seg.nii.gz;

then Dice and HD95 (mm) per tissue; ``OUTPUT/metrics.csv``, ``OUTPUT/overlays/<id>.png`` (T1 with the
reference above, the prediction below), ``OUTPUT/dice_boxplot.png`` and ``OUTPUT/report.html``.

Example:
    python applications/MRBrainS13_tissue_segmentation/deploy.py -p models/mrbrains \\
        --data_csv data/mrbrains_synthetic/val.csv -e predictions

DLTK's flag names (``--csv``, ``--export_path``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Trained model folder.", short_name="p")
flags.DEFINE_string("data_csv", None, "Subjects: id,subj_folder.")
flags.DEFINE_alias("csv", "data_csv")
flags.DEFINE_string("output_dir", None, "Folder for <id>_seg.nii.gz, metrics.csv and the report.", short_name="e")
flags.DEFINE_alias("export_path", "output_dir")
flags.DEFINE_boolean("predict_only", False, "Write label maps only; no labels needed, no scores.", short_name="n")
flags.DEFINE_float("overlap", 0.5, "Overlap of neighbouring windows, [0, 1).")
flags.DEFINE_integer("batch_size", 2, "Windows per network call.")
flags.DEFINE_list("mirror_axes", [], "Test-time mirroring: axes (0 z, 1 y, 2 x) each window is also predicted "
                  "flipped along, the probabilities averaged.")
flags.mark_flags_as_required(["model_path", "data_csv", "output_dir"])


def main(argv):
    del argv
    from dltk2.apps import brain_tissue

    brain_tissue.deploy(FLAGS.model_path, FLAGS.data_csv, FLAGS.output_dir, FLAGS.predict_only,
                        overlap=FLAGS.overlap, batch_size=FLAGS.batch_size,
                        mirror_axes=[int(axis) for axis in FLAGS.mirror_axes])


if __name__ == "__main__":
    run(main)
