"""Classifies images with a trained body-part model and writes a TSV of class probabilities.

``--infile`` is a text file listing image paths (PNG or DICOM, one per line; ``--tfrecord=false``) or
TFRecord shards (a file or a glob, ``--tfrecord=true``). The output (``--outfile``) has the header
``image class0 ... class6 predicted_class`` (``classN`` is the probability of class N, see
``labels.txt``; ``predicted_class`` its name) and one row per image. The classification is the
exported SavedModel's ``serving_default`` function itself. A listed file that cannot be read (missing,
truncated, a DICOM without pixels) is skipped with a one-line reason; the others are classified.
Shards of a record set converted again after the model was trained from that folder are refused
(another split: the test images could have been training images).

Example:
    python applications/dicom_bodypart/classify_image.py --infile data/tfrecords/bodypart_test-*.tfrecord \\
        --tfrecord=true --outfile prediction_result.txt --model_path models/bodypart
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import flags

from dltk2.cli import run
from dltk2.datasets import bodypart
from dltk2.inference import load_predictor
from dltk2.io.atomic import write_csv_atomically
from dltk2.io.dicom import read_dataset
from dltk2.errors import DataError, first_line
from dltk2.io.record_set import check_held_out, record_sets_of
from dltk2.io.tfrecord import glob_shards, image_dataset

FLAGS = flags.FLAGS
flags.DEFINE_string("infile", None, "A list of image paths, or TFRecord shards (file or glob).")
flags.DEFINE_boolean("tfrecord", False, "--infile is TFRecord shards.")
flags.DEFINE_string("outfile", "prediction_result.txt", "Output TSV.")
flags.DEFINE_string("model_path", None, "Trained model folder.")
flags.mark_flags_as_required(["infile", "model_path"])


def images_from_list(list_file: str, skipped: list[str]):
    """(name, grey image) for each path listed; DICOM files through the modality and VOI LUTs.

    A file that cannot be read is left out and its one-line reason appended to ``skipped``.
    """
    list_path = Path(list_file)
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: no such list file")
    for line in list_path.read_text(errors="replace").splitlines():
        path = Path(line.strip())
        if not line.strip():
            continue
        try:
            if path.suffix.lower() == ".png":
                image = bodypart.read_png(path)
            else:
                image = bodypart.grey_image_from_dicom(read_dataset(path), path)
        except DataError as error:
            skipped.append(first_line(error))
            continue
        yield str(path), image


def images_from_tfrecords(pattern: str):
    """(file name stored in the record, grey image) for each example of the shards."""
    for features in image_dataset(pattern, channels=1, dtype=tf.uint16):
        yield features["image/filename"].numpy().decode(), features["image"].numpy()[..., 0]


def main(argv):
    del argv
    skipped: list[str] = []
    if FLAGS.tfrecord:  # the inputs first, then the model
        shard_sets = record_sets_of(glob_shards(FLAGS.infile))
        source = images_from_tfrecords(FLAGS.infile)
    else:
        shard_sets = []
        source = images_from_list(FLAGS.infile, skipped)
    for shard_set in shard_sets:
        check_held_out(FLAGS.model_path, shard_set)
    classifier = load_predictor(FLAGS.model_path)
    classes = classifier.class_names
    rows = []
    for name, image in source:
        outputs = classifier.classify(image.astype(np.float32))
        rows.append({"image": name, **{f"class{i}": float(p) for i, p in enumerate(outputs["probabilities"])},
                     "predicted_class": outputs["class_name"].decode()})
    table = pd.DataFrame(rows, columns=["image", *[f"class{i}" for i in range(len(classes))], "predicted_class"])
    write_csv_atomically(table, FLAGS.outfile, sep="\t", float_format="%.6f")
    print(f"classified {len(table)} images -> {FLAGS.outfile}; predicted: "
          f"{table['predicted_class'].value_counts().to_dict()}")
    for message in skipped:
        print(f"  skipped {message}")


if __name__ == "__main__":
    run(main)
