"""What the IXI_HH applications (sex classification, age regression) share: flags, training, deploy.

An application chooses the target, the network's head and loss, and how a prediction is printed;
everything else (reading, splitting, strategy, precision, resumable training, export, crop-averaged
deployment) is here, so both applications behave the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import pandas as pd

import keras
import tensorflow as tf
from absl import flags
from absl import logging as absl_logging

from dltk2.cli import define_run_flags
from dltk2.datasets import ixi
from dltk2.export import export_predictor
from dltk2.inference import CropAveragingPredictor
from dltk2.io.image import read_array, read_voxels
from dltk2.io.reader import Mode
from dltk2.networks.resnet import resnet_3d
from dltk2.training import (as_float32, learning_rate_schedule, load_run_config, load_trained_model, prepare_model_dir,
                            save_run_config, select_precision_policy, select_strategy, steps_done, train)

FLAGS = flags.FLAGS


def define_training_flags(l2: float) -> None:
    """Defines train.py's flags with DLTK's defaults (GPU, real data); ``l2`` differs per task."""
    flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.")
    flags.DEFINE_string("data_csv", None, "demographic_HH.csv of the IXI_HH data set.")
    flags.DEFINE_string("data_dir", None, "Folder holding <s>mm/<ID>/T1_<s>mm.nii.gz; default: the CSV's folder.")
    flags.DEFINE_float("spacing_mm", 2.0, "Isotropic voxel size of the images to train on, mm.")
    flags.DEFINE_integer("num_train", 150, "The first N subjects train, the rest validate.")
    flags.DEFINE_integer("max_steps", 50000, "Total optimizer steps (a resumed run stops at the same total).")
    flags.DEFINE_integer("steps_per_epoch", 100, "Steps between checkpoints, validation and summaries.")
    flags.DEFINE_integer("batch_size", 8, "Global batch size (split across replicas).")
    flags.DEFINE_list("example_size", ["64", "96", "96"], "Crop size (z, y, x), voxels.")
    flags.DEFINE_integer("n_examples", 2, "Random crops per volume and pass.")
    flags.DEFINE_boolean("cache_volumes", False,
                         "Keep the whitened training volumes in memory (4.3 MB each at 2 mm) and cut crops with "
                         "graph ops: each file is read once, about 2.5x the examples per second of reading it "
                         "every pass.")
    flags.DEFINE_list("filters", ["16", "32", "64", "128", "256"], "Channels of the stem and each scale.")
    flags.DEFINE_list("strides", ["1", "2", "2", "2", "2"], "Stride of the stem and each scale.")
    flags.DEFINE_integer("num_res_units", 2, "Residual units per scale.")
    flags.DEFINE_float("l2", l2, "L2 regularisation of the kernels.")
    flags.DEFINE_float("batch_norm_momentum", 0.99, "Momentum of the batch norms' moving statistics "
                       "(DLTK's 0.99; 0.9 for runs of hundreds of steps).")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
    flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"],
                      "constant (DLTK), or cosine decay to 0 over max_steps.")
    flags.DEFINE_float("adam_epsilon", 1e-5, "Adam epsilon.")
    flags.DEFINE_boolean("run_validation", True, "Evaluate on the validation subjects after each epoch.")
    define_run_flags()
    flags.DEFINE_boolean("export", True, "Export model.keras and a SavedModel when training ends.")
    flags.DEFINE_integer("num_crops", 4, "Crops averaged by the exported serving signature.")
    flags.mark_flags_as_required(["model_path", "data_csv"])


class Head(NamedTuple):
    """What an application puts on the shared trunk."""

    task: str  # "classification" or "regression"
    num_classes: int
    loss: keras.losses.Loss
    metrics: list


def run_training(target: str, head: Head, name: str,
                 initialise: Callable[[keras.Model, pd.DataFrame], None] | None = None) -> Path:
    """train.py's body: reads the flags, trains (resuming), exports. Returns the model folder."""
    absl_logging.set_verbosity(absl_logging.INFO if FLAGS.verbose else absl_logging.WARNING)
    # The inputs first: a bad CSV or a missing volume is one line before any folder is written.
    subjects = ixi.load_subjects(FLAGS.data_csv, target, FLAGS.spacing_mm, FLAGS.data_dir)
    train_subjects, val_subjects = ixi.split_subjects(subjects, FLAGS.num_train)
    model_path = prepare_model_dir(FLAGS.model_path, restart=FLAGS.restart)
    strategy = select_strategy(FLAGS.devices or None)
    policy = select_precision_policy(FLAGS.precision)
    example_size = [int(s) for s in FLAGS.example_size]
    params = {"example_size": example_size, "n_examples": FLAGS.n_examples, "target": target}
    reader = ixi.build_reader(example_size, target)
    if FLAGS.cache_volumes:
        train_dataset = ixi.cached_training_dataset(train_subjects, example_size, FLAGS.n_examples, target,
                                                    FLAGS.batch_size)
    else:
        train_dataset = reader.dataset(train_subjects, Mode.TRAIN, params, batch_size=FLAGS.batch_size)
    val_dataset = (reader.dataset(val_subjects, Mode.EVAL, params, batch_size=FLAGS.batch_size)
                   if FLAGS.run_validation else None)

    with strategy.scope():
        model = resnet_3d(
            input_shape=example_size + [1], num_classes=head.num_classes, num_res_units=FLAGS.num_res_units,
            filters=[int(f) for f in FLAGS.filters], strides=[int(s) for s in FLAGS.strides],
            l2_regularisation=FLAGS.l2, task=head.task, name=name,
            batch_norm_momentum=FLAGS.batch_norm_momentum,
        )
        if initialise is not None:
            initialise(model, train_subjects)
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate_schedule(FLAGS.learning_rate, FLAGS.lr_schedule, FLAGS.max_steps),
                epsilon=FLAGS.adam_epsilon),
            loss=head.loss,
            metrics=head.metrics,
        )
    save_run_config(model_path, {
        "task": head.task, "target": target, "spacing_mm": FLAGS.spacing_mm, "example_size": example_size,
        "num_train": FLAGS.num_train, "data_csv": str(Path(FLAGS.data_csv).resolve()),
        "data_dir": FLAGS.data_dir, "precision": policy, "replicas": strategy.num_replicas_in_sync,
    })
    print(f"model: {model.count_params():,} parameters; {len(train_subjects)} training and "
          f"{len(val_subjects)} validation subjects; precision {policy}; "
          f"{strategy.num_replicas_in_sync} replica(s); TensorBoard: tensorboard --logdir {model_path / 'logs'}")
    done = steps_done(model_path)
    if done:
        print(f"resuming {model_path} at step {done} of {FLAGS.max_steps}")
    train(model, train_dataset, model_path, FLAGS.max_steps, FLAGS.steps_per_epoch,
          validation_dataset=val_dataset, verbose=1 if FLAGS.verbose else 2)

    if FLAGS.export:
        keras.mixed_precision.set_global_policy("float32")
        trained = as_float32(load_trained_model(model_path, "best" if FLAGS.run_validation else "last"))
        predictor = CropAveragingPredictor(trained, example_size, FLAGS.num_crops, task=head.task)
        example_volume, _ = read_array(subjects["image"].iloc[0], dtype=np.float32)
        keras_file, saved_model = export_predictor(model_path, predictor, {"image": example_volume})
        print(f"exported {keras_file} and SavedModel {saved_model}")
    return model_path


def define_deploy_flags(target: str) -> None:
    """Defines deploy.py's flags."""
    flags.DEFINE_string("model_path", None, "Model folder written by train.py.")
    flags.DEFINE_string("data_csv", None, "demographic_HH.csv; default: the one the model was trained with.")
    flags.DEFINE_string("data_dir", None, "Folder holding the <s>mm folders; default: the CSV's folder.")
    flags.DEFINE_enum("subjects", "validation", ["validation", "all"],
                      "Which subjects: those after the training ones (validation), or every row.")
    flags.DEFINE_integer("num_crops", 4, "Random crops averaged per subject.")
    flags.DEFINE_integer("seed", 0, "Seed of the crop positions (0: as the SavedModel's serving_default).")
    flags.DEFINE_string("output_csv", None, f"Predictions CSV; default: <model_path>/predictions_{target}.csv.")
    flags.mark_flags_as_required(["model_path"])


class Prediction(NamedTuple):
    subject_id: str
    label: str
    outputs: dict
    seconds: float


def predict_subjects(target: str) -> Iterator[Prediction]:
    """deploy.py's loop: each chosen subject's crop-averaged prediction and how long it took.

    The prediction is the exported ``predict_with_seed`` function itself (``--seed 0`` is
    ``serving_default``), so TF Serving answers what deploy prints.
    """
    config = load_run_config(FLAGS.model_path)
    subjects = ixi.load_subjects(FLAGS.data_csv or config["data_csv"], target, config["spacing_mm"],
                                 FLAGS.data_dir or config.get("data_dir"))
    if FLAGS.subjects == "validation":
        _, subjects = ixi.split_subjects(subjects, config["num_train"])
    predictor = CropAveragingPredictor(as_float32(load_trained_model(FLAGS.model_path)), config["example_size"],
                                       FLAGS.num_crops, task=config["task"])
    predict = predictor.serving_functions()["predict_with_seed"]
    seed = tf.constant(FLAGS.seed, tf.int32)
    for subject_id, image_path, label in subjects[["id", "image", "label"]].itertuples(index=False):
        volume = read_voxels(image_path)
        start = time.perf_counter()
        outputs = {name: value.numpy() for name, value in predict(tf.constant(volume), seed).items()}
        yield Prediction(subject_id, label, outputs, time.perf_counter() - start)


def predictions_csv_path(target: str) -> Path:
    return Path(FLAGS.output_csv or Path(FLAGS.model_path) / f"predictions_{target}.csv")
