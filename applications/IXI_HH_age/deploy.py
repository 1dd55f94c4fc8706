"""Predicts age for IXI_HH subjects with a trained model, averaging the predictions of random crops.

Prints one line per subject, then the mean absolute error, as DLTK did::

    id=IXI566; pred=47.20 yrs; true=42.97 yrs; run time=0.23 s;
    ...
    mean absolute err=5.399 yrs

and writes a CSV (``--output_csv``) with the averaged prediction and its spread across crops.
The prediction is the exported SavedModel's own function: for the same ``--seed`` (0 is the
SavedModel's ``serving_default``), TF Serving gives the same answer.

Example:
    python applications/IXI_HH_age/deploy.py --model_path models/ixi_age \\
        --data_csv data/IXI_HH/demographic_HH.csv
"""

import dltk2  # noqa: F401  (first: turns on oneDNN before TensorFlow loads)

import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import flags

from reader import TARGET
from dltk2.cli import run
from dltk2.datasets import ixi
from dltk2.inference import CropAveragingPredictor
from dltk2.io.image import read_array
from dltk2.training import load_run_config, load_trained_model

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder written by train.py.")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv; default: the one the model was trained with.")
flags.DEFINE_string("data_dir", None, "Folder holding the <s>mm folders; default: the CSV's folder.")
flags.DEFINE_enum("subjects", "validation", ["validation", "all"],
                  "Which subjects: those after the training ones (validation), or every row.")
flags.DEFINE_integer("num_crops", 4, "Random crops averaged per subject.")
flags.DEFINE_integer("seed", 0, "Seed of the crop positions (0: as the SavedModel's serving_default).")
flags.DEFINE_string("output_csv", None, "Predictions CSV; default: <model_path>/predictions_age.csv.")
flags.mark_flags_as_required(["model_path"])


def main(argv):
    del argv
    config = load_run_config(FLAGS.model_path)
    data_csv = FLAGS.data_csv or config["data_csv"]
    subjects = ixi.load_subjects(data_csv, TARGET, config["spacing_mm"], FLAGS.data_dir or config.get("data_dir"))
    if FLAGS.subjects == "validation":
        _, subjects = ixi.split_subjects(subjects, config["num_train"])
    model = load_trained_model(FLAGS.model_path)
    predictor = CropAveragingPredictor(model, config["example_size"], FLAGS.num_crops, task="regression")
    predict = predictor.serving_functions()["predict_with_seed"]
    seed = tf.constant(FLAGS.seed, tf.int32)

    rows = []
    for subject_id, image_path, label in subjects[["id", "image", "label"]].itertuples(index=False):
        volume, _ = read_array(image_path)
        start = time.perf_counter()
        outputs = predict(tf.constant(volume), seed)
        prediction = float(outputs["prediction"])
        elapsed = time.perf_counter() - start
        true = float(label)
        print(f"id={subject_id}; pred={prediction:.2f} yrs; true={true:.2f} yrs; run time={elapsed:.2f} s;",
              flush=True)
        rows.append({"id": subject_id, "pred_yrs": prediction, "true_yrs": true,
                     "pred_std_yrs": float(outputs["prediction_std"]), "run_time_s": elapsed})
    table = pd.DataFrame(rows)
    mean_absolute_error = float(np.mean(np.abs(table["pred_yrs"] - table["true_yrs"])))
    print(f"mean absolute err={mean_absolute_error:.3f} yrs")
    output_csv = Path(FLAGS.output_csv or Path(FLAGS.model_path) / "predictions_age.csv")
    table.to_csv(output_csv, index=False, float_format="%.6f")


if __name__ == "__main__":
    run(main)
