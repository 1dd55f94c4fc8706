"""Trains a 3D segmentation network for the 13 Synapse (BTCV) abdominal organs.

Reads the CSVs that ``preprocessing.py`` writes (2 mm, HU clipped and scaled), draws class-balanced
patches, and trains the network ``--config`` names: ``net`` (``unet``, ``asym_unet``, ``fcn``), ``opt``
(``adam``, ``momentum``, ``rmsprop``), ``loss`` (``ce``, ``balce``, ``dice``, ``dice_ce``), ``filters``,
``strides``, ``num_residual_units``, ``learning_rate``, ``l2``, ``patch_size``, ``examples_per_volume``,
``batch_size``, ``max_steps``, ``steps_per_epoch`` and optionally ``schedule`` (``constant``, DLTK's,
or ``cosine`` decay to zero over ``max_steps``). After each epoch the whole validation volumes are
segmented with a sliding window and Dice per organ goes to TensorBoard (with a slice overlay); the
best checkpoint is kept by mean Dice. An existing model folder is resumed; ``--restart`` starts over.
When training ends, the best model is exported: ``<model_path>/model.keras`` and a SavedModel in
``<model_path>/export/<n>/`` whose ``serving_default`` takes a raw CT volume (``image``, float32 HU,
(z, y, x)) and its ``spacing`` ((x, y, z) mm, float64) and returns ``labels`` on the input grid.

Example:
    python applications/synapse_ct_seg/train.py -p models/synapse --config applications/synapse_ct_seg/config.json \\
        --train_csv data/synapse_2mm/train.csv --val_csv data/synapse_2mm/val.csv
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging as absl_logging

from reader import read_fn
from dltk2.callbacks import SegmentationValidation
from dltk2.cli import define_run_flags, run
from dltk2.datasets import synapse
from dltk2.export import export_predictor
from dltk2.inference import SlidingWindowSegmenter
from dltk2.io.image import read_image
from dltk2.io.reader import Mode, Reader, read_csv_columns
from dltk2.losses import SegmentationLoss
from dltk2.networks.fcn import residual_fcn_3d
from dltk2.networks.unet import asymmetric_residual_unet_3d, residual_unet_3d
from dltk2.training import (as_float32, learning_rate_schedule, load_trained_model, prepare_model_dir,
                            save_run_config, select_precision_policy, select_strategy, steps_done, train)

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("config", str(Path(__file__).with_name("config.json")), "Training configuration (JSON).")
flags.DEFINE_string("train_csv", None, "train.csv from preprocessing.py.")
flags.DEFINE_string("val_csv", None, "val.csv from preprocessing.py; without it, no validation.")
flags.DEFINE_integer("max_steps", None, "Overrides the configuration's max_steps.")
flags.DEFINE_list("patch_size", None, "Overrides the configuration's patch_size (z,y,x voxels), e.g. for a smaller GPU.")
flags.DEFINE_boolean("export", True, "Export model.keras and a SavedModel when training ends.")
define_run_flags()
flags.mark_flags_as_required(["model_path", "train_csv"])

NETWORKS = {"unet": residual_unet_3d, "asym_unet": asymmetric_residual_unet_3d, "fcn": residual_fcn_3d}
REQUIRED = ("net", "opt", "loss", "filters", "strides", "num_residual_units", "learning_rate", "patch_size",
            "examples_per_volume", "batch_size", "num_classes", "max_steps", "steps_per_epoch")


def load_config(path: str) -> dict:
    """Reads and checks a configuration; errors name the file and the key."""
    config = json.loads(Path(path).read_text())
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    if config["net"] not in NETWORKS:
        raise ValueError(f"{path}: net must be one of {sorted(NETWORKS)}, got {config['net']!r}")
    return config


def optimizer(config: dict, max_steps: int) -> keras.optimizers.Optimizer:
    rate = learning_rate_schedule(config["learning_rate"], config.get("schedule", "constant"), max_steps)
    choices = {
        "adam": lambda: keras.optimizers.Adam(rate),
        "momentum": lambda: keras.optimizers.SGD(rate, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(rate),
    }
    if config["opt"] not in choices:
        raise ValueError(f"opt must be one of {sorted(choices)}, got {config['opt']!r}")
    return choices[config["opt"]]()


def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.INFO if FLAGS.verbose else absl_logging.WARNING)
    config = load_config(FLAGS.config)
    max_steps = FLAGS.max_steps or config["max_steps"]
    model_path = prepare_model_dir(FLAGS.model_path, restart=FLAGS.restart)
    strategy = select_strategy(FLAGS.devices or None)
    policy = select_precision_policy(FLAGS.precision)
    if FLAGS.patch_size:
        config["patch_size"] = [int(size) for size in FLAGS.patch_size]
    patch = list(config["patch_size"])
    columns = ["id", "imgs", "lbls"]
    train_cases = read_csv_columns(FLAGS.train_csv, columns)[columns]
    reader = Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                    {"features": {"x": patch + [1]}, "labels": {"y": patch}})
    params = {"example_size": patch, "n_examples": config["examples_per_volume"]}
    dataset = reader.dataset(train_cases, Mode.TRAIN, params, batch_size=config["batch_size"],
                             shuffle_buffer_size=4 * config["examples_per_volume"])
    callbacks = []
    if FLAGS.val_csv:
        val_cases = read_csv_columns(FLAGS.val_csv, columns)
        names = {0: "background", **synapse.ORGANS}
        callbacks.append(SegmentationValidation(list(zip(val_cases["imgs"], val_cases["lbls"])), patch, names,
                                                model_path / "logs", batch_size=config["batch_size"]))

    with strategy.scope():
        model = NETWORKS[config["net"]](
            input_shape=(None, None, None, 1), num_classes=config["num_classes"],
            num_res_units=config["num_residual_units"], filters=config["filters"], strides=config["strides"],
            l2_regularisation=config.get("l2", 0.0), name=f"synapse_{config['net']}",
        )
        model.compile(optimizer=optimizer(config, max_steps), loss=SegmentationLoss(config["loss"]))
    spacing_mm = list(read_image(train_cases["imgs"].iloc[0]).GetSpacing())
    save_run_config(model_path, {**config, "max_steps": max_steps, "precision": policy, "spacing_mm": spacing_mm,
                                 "hu_window": list(synapse.HU_WINDOW),
                                 "train_csv": str(Path(FLAGS.train_csv).resolve())})
    print(f"model: {model.count_params():,} parameters; {len(train_cases)} training cases; precision {policy}; "
          f"TensorBoard: tensorboard --logdir {model_path / 'logs'}")
    done = steps_done(model_path)
    if done:
        print(f"resuming {model_path} at step {done} of {max_steps}")
    train(model, dataset, model_path, max_steps, config["steps_per_epoch"], monitor="val_mean_dice", mode="max",
          verbose=1 if FLAGS.verbose else 2, extra_callbacks=callbacks)

    if FLAGS.export:
        keras.mixed_precision.set_global_policy("float32")
        segmenter = SlidingWindowSegmenter(as_float32(load_trained_model(model_path)), patch, spacing_mm,
                                           synapse.HU_WINDOW, num_classes=config["num_classes"])
        warmup = {"image": np.full(patch, synapse.HU_WINDOW[0], np.float32),
                  "spacing": np.asarray(spacing_mm, np.float64)}
        keras_file, saved_model = export_predictor(model_path, segmenter, warmup)
        print(f"exported {keras_file} and SavedModel {saved_model}")


if __name__ == "__main__":
    run(main)
