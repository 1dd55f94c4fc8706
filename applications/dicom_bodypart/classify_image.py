"""Classifies images with a trained body-part model and writes a TSV of class probabilities.

``--data_path`` is a text file listing image paths (PNG or DICOM, one per line; ``--tfrecord=false``) or
TFRecord shards (a file or a glob, ``--tfrecord=true``). The output (``--output_file``) has the header
``image class0 ... class6 predicted_class`` (``classN`` is the probability of class N, see
``labels.txt``; ``predicted_class`` its name) and one row per image. The classification is the
exported SavedModel's ``serving_default`` function itself. A listed file that cannot be read (missing,
truncated, a DICOM without pixels) is skipped with a one-line reason; the others are classified.
Shards of a record set converted again after the model was trained from that folder are refused
(another split: the test images could have been training images). With ``--sr_dir``, each DICOM image
listed also gets a DICOM Structured Report of its predicted body part for the PACS.

Example:
    python applications/dicom_bodypart/classify_image.py --data_path data/tfrecords/bodypart_test-*.tfrecord \\
        --tfrecord=true --output_file prediction_result.txt --model_path models/bodypart

The original's flag names (``--infile`` and ``--outfile``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("data_path", None, "A list of image paths, or TFRecord shards (file or glob).")
flags.DEFINE_alias("infile", "data_path")
flags.DEFINE_boolean("tfrecord", False, "--data_path is TFRecord shards.")
flags.DEFINE_string("output_file", "prediction_result.txt", "Output TSV.")
flags.DEFINE_alias("outfile", "output_file")
flags.DEFINE_string("model_path", None, "Trained model folder.")
flags.DEFINE_string("sr_dir", None, "Also write a DICOM Structured Report per DICOM image listed: the body part "
                    "(SNOMED CT), its probability and the model, referencing the image.")
flags.DEFINE_string("deidentify_key", None, "A file holding a secret: the reports are de-identified with it.")
flags.mark_flags_as_required(["data_path", "model_path"])


def main(argv):
    del argv
    from dltk2.apps import bodypart
    from dltk2.io.dicom_objects import read_secret

    salt = read_secret(FLAGS.deidentify_key) if FLAGS.deidentify_key else None
    bodypart.classify(FLAGS.model_path, FLAGS.data_path, FLAGS.output_file, FLAGS.tfrecord, FLAGS.sr_dir, salt)


if __name__ == "__main__":
    run(main)
