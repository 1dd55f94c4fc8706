"""Segments whole CT volumes with a trained model and writes label maps on each original grid.

For every case of ``--data_csv`` (a CSV from ``preprocessing.py``: ``id`` and ``orig_imgs``, and
``orig_lbls`` unless ``--predict_only``), the original image is resampled to the training spacing,
clipped and scaled, segmented with a sliding window, and the labels go back onto the original grid:
``OUTPUT/<id>_seg.nii.gz`` has exactly the original image's size, spacing, origin and direction (a case
whose ``orig_imgs`` is a DICOM series folder also gets ``OUTPUT/<id>_seg.dcm``, a DICOM SEG of the
13 organs referencing its slices, for a PACS; ``--deidentify_key`` de-identifies it). The
segmentation is the exported SavedModel's own ``serving_default`` function, so TF Serving returns the
same labels. With labels, each case prints::

    Id=img0001; Dice=0.8123; time=1.23 secs; output_path=OUTPUT/img0001_seg.nii.gz;

then a table of mean Dice and HD95 (mm) per organ; ``OUTPUT/metrics.csv`` holds every case's scores,
``OUTPUT/overlays/<id>.png`` three planes through the organs (reference above, prediction below),
``OUTPUT/dice_boxplot.png`` the Dice of each organ over cases, and ``OUTPUT/report.html`` all of them
on one page with the run's configuration.

Example:
    python applications/synapse_ct_seg/deploy.py -p models/synapse --data_csv data/synapse_2mm/val.csv -e predictions

DLTK's flag names (``--csv``, ``--export_path``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Trained model folder.", short_name="p")
flags.DEFINE_string("data_csv", None, "Cases: a CSV from preprocessing.py (id, orig_imgs[, orig_lbls]).")
flags.DEFINE_alias("csv", "data_csv")
flags.DEFINE_string("output_dir", None, "Folder for <id>_seg.nii.gz and metrics.csv.", short_name="e")
flags.DEFINE_alias("export_path", "output_dir")
flags.DEFINE_boolean("predict_only", False, "Write label maps only; no labels needed, no scores.", short_name="n")
flags.DEFINE_float("overlap", 0.5, "Overlap of neighbouring windows, [0, 1).")
flags.DEFINE_integer("batch_size", 2, "Windows per network call.")
flags.DEFINE_enum("blend", "gaussian", ["gaussian", "constant"], "Weights of each window's voxels.")
flags.DEFINE_list("mirror_axes", [], "Test-time mirroring: axes (0 z, 1 y, 2 x) each window is also predicted "
                  "flipped along, the probabilities averaged (e.g. 0,1,2: 8 predictions per window).")
flags.DEFINE_boolean("uncertainty", False, "Also write <id>_entropy.nii.gz: the per-voxel entropy of the "
                     "class probabilities (nats), on the original grid.")
flags.DEFINE_string("deidentify_key", None, "A file holding a secret: DICOM SEGs are de-identified with it (PS3.15 "
                    "Basic Profile, UIDs as a de-identified copy of the source made with the same secret).")
flags.mark_flags_as_required(["model_path", "data_csv", "output_dir"])


def main(argv):
    del argv
    from dltk2.apps.segmentation import DicomOutput, check_cases, report_segmentation, segment_cases, summary_table
    from dltk2.io.dicom_objects import ModelIdentity, read_secret
    from dltk2.datasets import synapse
    from dltk2.inference import load_predictor
    from dltk2.io.atomic import write_csv_atomically
    from dltk2.io.reader import read_csv_columns

    columns = ["id", "orig_imgs"] + ([] if FLAGS.predict_only else ["orig_lbls"])
    table = read_csv_columns(FLAGS.data_csv, columns, path_columns=columns[1:])
    cases = [{"id": row["id"], "image": row["orig_imgs"], "label": row.get("orig_lbls", "")}
             for row in table.to_dict("records")]
    check_cases(cases, FLAGS.predict_only)  # every case's headers, before the model is loaded
    salt = read_secret(FLAGS.deidentify_key) if FLAGS.deidentify_key else None
    segmenter = load_predictor(FLAGS.model_path, overlap=FLAGS.overlap, batch_size=FLAGS.batch_size,
                               blend=FLAGS.blend, mirror_axes=[int(a) for a in FLAGS.mirror_axes],
                               uncertainty=FLAGS.uncertainty)
    output_dir = Path(FLAGS.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dicom = DicomOutput(ModelIdentity.of_model_folder(FLAGS.model_path), synapse.ORGANS, salt)
    results = segment_cases(segmenter, cases, output_dir, synapse.ORGANS, FLAGS.predict_only, dicom=dicom)
    write_csv_atomically(results, output_dir / "metrics.csv")
    if not FLAGS.predict_only:
        summary = summary_table(results, synapse.ORGANS)
        print(summary.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    report = report_segmentation(results, synapse.ORGANS, output_dir, FLAGS.model_path,
                                 "Synapse multi-organ CT segmentation: deploy")
    print(f"{len(results)} cases in {results['seconds'].sum():.1f} s; wrote {output_dir / 'metrics.csv'} and {report}")


if __name__ == "__main__":
    run(main)
