"""Classifies images with a trained body-part model and writes a TSV of class probabilities.

``--infile`` is a text file listing image paths (PNG or DICOM, one per line; ``--tfrecord=false``) or
TFRecord shards (a file or a glob, ``--tfrecord=true``). The output (``--outfile``) has the header
``image class0 ... class6 predicted_class`` (``classN`` is the probability of class N, see
``labels.txt``; ``predicted_class`` its name) and one row per image. The classification is the
exported SavedModel's ``serving_default`` function itself.

Example:
    python applications/dicom_bodypart/classify_image.py --infile data/tfrecords/bodypart_test-*.tfrecord \\
        --tfrecord=true --outfile prediction_result.txt --model_path models/bodypart
"""

import dltk2  # noqa: F401  (first: turns on oneDNN before TensorFlow loads)

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from absl import flags

from dltk2.cli import run
from dltk2.datasets import bodypart
from dltk2.inference import ImageClassifier2D
from dltk2.io.atomic import write_csv_atomically
from dltk2.io.dicom import read_dataset
from dltk2.io.tfrecord import image_dataset
from dltk2.training import as_float32, load_run_config, load_trained_model

FLAGS = flags.FLAGS
flags.DEFINE_string("infile", None, "A list of image paths, or TFRecord shards (file or glob).")
flags.DEFINE_boolean("tfrecord", False, "--infile is TFRecord shards.")
flags.DEFINE_string("outfile", "prediction_result.txt", "Output TSV.")
flags.DEFINE_string("model_path", None, "Trained model folder.")
flags.mark_flags_as_required(["infile", "model_path"])


def images_from_list(list_file: str):
    """(name, grey image) for each path listed; DICOM files through the modality and VOI LUTs."""
    for line in Path(list_file).read_text().splitlines():
        path = Path(line.strip())
        if not line.strip():
            continue
        if path.suffix.lower() == ".png":
            yield str(path), bodypart.read_png(path)
        else:
            yield str(path), bodypart.grey_image_from_dicom(read_dataset(path), path)


def images_from_tfrecords(pattern: str):
    """(file name stored in the record, grey image) for each example of the shards."""
    for features in image_dataset(pattern, channels=1, dtype=tf.uint16):
        yield features["image/filename"].numpy().decode(), features["image"].numpy()[..., 0]


def main(argv):
    del argv
    keras.mixed_precision.set_global_policy("float32")
    config = load_run_config(FLAGS.model_path)
    classes = config["classes"]
    classifier = ImageClassifier2D(as_float32(load_trained_model(FLAGS.model_path)), config["image_size"], classes)
    source = images_from_tfrecords(FLAGS.infile) if FLAGS.tfrecord else images_from_list(FLAGS.infile)
    rows = []
    for name, image in source:
        outputs = classifier.classify(image.astype(np.float32))
        rows.append({"image": name, **{f"class{i}": float(p) for i, p in enumerate(outputs["probabilities"])},
                     "predicted_class": outputs["class_name"].decode()})
    table = pd.DataFrame(rows, columns=["image", *[f"class{i}" for i in range(len(classes))], "predicted_class"])
    write_csv_atomically(table, FLAGS.outfile, sep="\t", float_format="%.6f")
    print(f"classified {len(table)} images -> {FLAGS.outfile}; predicted: "
          f"{table['predicted_class'].value_counts().to_dict()}")


if __name__ == "__main__":
    run(main)
