"""Evaluates trained knee-MRI classifiers on MRNet's validation exams (no oversampling).

Runs the model that train.py exported (``<model_path>/model.keras`` inside the same serving function as
the SavedModel: one raw series in, class probabilities out) over every exam of ``--split`` (MRNet's
``valid`` by default), then prints the per-class precision, recall, f1 and support, accuracy, ROC AUC,
sensitivity, specificity and the confusion matrix, and writes to ``--output_dir``
(default ``<model_path>/evaluation``): ``predictions.csv`` (``id, label, probability_normal,
probability_abnormal, predicted, seconds``), ``metrics.json``, ``confusion_matrix.png``,
``roc_curve.png``, ``training_curves.png``, and ``saliency/<id>_saliency.png`` and ``.nii.gz``: the
Grad-CAM map of the first ``--explain`` exams predicted abnormal (the exported ``explain`` signature's,
on the series' grid), shown in ``report.html`` too.

Three planes, as Stanford's MRNet: give one model per plane with ``--model_paths`` (each trained with
its ``--plane``, the same ``--seed`` and data, so the same validation exams). Their abnormal
probabilities are combined by a logistic regression fitted on the models' own held-out validation
exams (``splits.csv``), never on the exams evaluated, and the combined result is reported as well.

``--images`` classifies DICOM series folders of the model's plane instead (no scores), and
``--sr_dir`` writes a DICOM Structured Report of each series' finding for a PACS.

Example:
    python applications/mrnet_knee/deploy.py --model_path models/mrnet --data_dir data/MRNet-v1.0
    python applications/mrnet_knee/deploy.py --model_paths models/sag,models/cor,models/ax \\
        --data_dir data/MRNet-v1.0 --output_dir results/three_planes
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder written by train.py (model.keras, run_config.json).")
flags.DEFINE_list("model_paths", [], "Instead of --model_path: one model folder per plane, combined.")
flags.DEFINE_string("data_dir", None, "MRNet folder.")
flags.DEFINE_string("exam_list", None, "Instead of --data_dir: a CSV with path,label columns (one model).")
flags.DEFINE_string("split", "valid", "MRNet split to evaluate.")
flags.DEFINE_string("output_dir", None, "Where results go; default <model_path>/evaluation.")
flags.DEFINE_list("images", [], "Instead of MRNet's exams: DICOM series folders of the model's plane, classified, "
                  "not scored.")
flags.DEFINE_string("sr_dir", None, "With --images: a DICOM Structured Report of each series' finding, its "
                    "probability and the model, referencing the series' images.")
flags.DEFINE_list("mirror_axes", [], "Test-time mirroring: each series also classified flipped along these axes "
                  "(0 slices, 1 rows, 2 columns), in one network call; probability_std is the spread.")
flags.DEFINE_string("deidentify_key", None, "A file holding a secret: the reports are de-identified with it.")
flags.DEFINE_integer("explain", 4, "The first this many exams predicted positive are explained (Grad-CAM "
                     "overlays in report.html, maps as NIfTI in <output_dir>/saliency); 0: none.")


def main(argv):
    del argv
    from dltk2.apps import mrnet

    if FLAGS.images:  # new DICOM series: classified (and reported as DICOM SR), not scored
        from dltk2.errors import DataError
        from dltk2.io.dicom_objects import read_secret

        if not FLAGS.model_path:
            raise DataError("--images needs --model_path (the model of the series' plane)")
        salt = read_secret(FLAGS.deidentify_key) if FLAGS.deidentify_key else None
        mrnet.classify_series(FLAGS.model_path, FLAGS.images, FLAGS.sr_dir, salt)
        return
    mrnet.evaluate(FLAGS.model_paths or ([FLAGS.model_path] if FLAGS.model_path else []), FLAGS.data_dir,
                   FLAGS.exam_list, FLAGS.split, FLAGS.output_dir, [int(a) for a in FLAGS.mirror_axes],
                   FLAGS.explain)


if __name__ == "__main__":
    flags.register_validator("model_paths", lambda v: len(v) != 1, "--model_paths needs two or more folders")
    run(main)
