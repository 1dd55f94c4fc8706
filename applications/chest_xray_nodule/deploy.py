"""Evaluates the exported chest X-ray classifier on the test split: the original's table, and plots.

Runs the model that train.py exported (``<model_path>/model.keras`` inside the same serving function
as the SavedModel: grey image of any size and range in, class probabilities out) over every image of
``<name>_<split>-*.tfrecord``, then prints per-class precision and recall, accuracy, ROC AUC,
sensitivity, specificity and the confusion matrix, and writes to ``--output_dir``
(default ``<model_path>/evaluation``):

- ``predictions.csv``: ``filename, label, probability_normal, probability_nodule, predicted``;
- ``metrics.json``: the numbers printed;
- ``confusion_matrix.png``, ``roc_curve.png`` and ``training_curves.png`` (stage 1 and stage 2);
- ``saliency/<filename>_saliency.png`` and ``.npy``: Grad-CAM of the first ``--explain`` images
  predicted nodule (the exported ``explain`` signature's map), shown in ``report.html`` too.

``--images`` classifies PNG or DICOM radiographs instead (no scores), and ``--sr_dir`` writes a DICOM
Structured Report of each DICOM radiograph's finding for a PACS.

Example:
    python applications/chest_xray_nodule/deploy.py --model_path models/chest --data_dir data/chest_tfrecords
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

import time

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder written by train.py (model.keras, run_config.json).")
flags.DEFINE_string("data_dir", None, "Folder with the TFRecord shards from prepare.py.")
flags.DEFINE_string("data_name", "chest", "Shard name prefix.")
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Which split to evaluate.")
flags.DEFINE_string("output_dir", None, "Where results go; default <model_path>/evaluation.")
flags.DEFINE_list("images", [], "Radiographs to classify instead of a split: PNG or DICOM (CR, DX) files; "
                  "predicted, not scored (no --data_dir needed).")
flags.DEFINE_string("sr_dir", None, "With --images: a DICOM Structured Report of each DICOM radiograph's finding "
                    "(SNOMED CT normal or nodule), its probability and the model.")
flags.DEFINE_string("deidentify_key", None, "A file holding a secret: the reports are de-identified with it.")
flags.DEFINE_integer("explain", 4, "The first this many images predicted nodule are explained (Grad-CAM overlays "
                     "in report.html, maps in <output_dir>/saliency); 0: none.")
flags.mark_flags_as_required(["model_path"])


def main(argv):
    del argv
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from dltk2.apps.classification import classify_scans, report_classification
    from dltk2.datasets import chest_xray
    from dltk2.errors import DataError
    from dltk2.explanations import PositiveCases
    from dltk2.inference import load_predictor
    from dltk2.io.record_set import check_held_out, read_record_set
    from dltk2.io.tfrecord import image_dataset
    from dltk2.model_folder import ModelFolder

    if FLAGS.images:  # new radiographs: classified (and reported as DICOM SR), not scored
        from dltk2.io.dicom_objects import CHEST_FINDING_CODES, read_secret

        salt = read_secret(FLAGS.deidentify_key) if FLAGS.deidentify_key else None
        classify_scans(FLAGS.model_path, FLAGS.images, CHEST_FINDING_CODES, FLAGS.sr_dir, salt)
        return
    if not FLAGS.data_dir:
        raise DataError("--data_dir (the TFRecords of prepare.py) or --images (files to classify) is needed")
    folder = ModelFolder(FLAGS.model_path)
    model_path = folder.path
    output_dir = folder.output_dir(FLAGS.output_dir)
    classifier = load_predictor(folder)
    classes = classifier.class_names
    rows, explained = [], PositiveCases(output_dir, FLAGS.explain, classes)
    started = time.perf_counter()
    record_set = read_record_set(FLAGS.data_dir, FLAGS.data_name)
    check_held_out(model_path, record_set)
    for features in image_dataset(chest_xray.split_files(record_set, FLAGS.split), channels=1, dtype=tf.uint16):
        image = features["image"].numpy()[..., 0].astype(np.float32)
        result = classifier.classify(image)
        filename, label = features["image/filename"].numpy().decode(), int(features["image/class/label"])
        explained.offer(classifier, filename, image, result, label)
        rows.append({"filename": filename, "label": label,
                     **{f"probability_{name}": float(p) for name, p in zip(classes, result["probabilities"])},
                     "predicted": classes[int(result["class_id"])]})
    seconds = time.perf_counter() - started
    table = pd.DataFrame(rows)
    histories = {stage: pd.read_csv(path) for stage, path in (("stage 1 (head)", folder.file("head", "history.csv")),
                                                              ("stage 2 (fine-tune)", folder.history))
                 if path.exists() and path.stat().st_size}
    report_classification(table, classes, output_dir, f"{FLAGS.split} set", histories,
                          extra={"seconds_per_image": seconds / len(table)}, model_path=FLAGS.model_path,
                          explanations=explained.explanations)
    print(f"wrote {output_dir}/predictions.csv, metrics.json, the plots and report.html")


if __name__ == "__main__":
    run(main)
