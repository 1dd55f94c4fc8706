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

from absl import flags

from dltk2.cli import define_run_flags, run, run_settings

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("config", str(Path(__file__).with_name("config.json")), "Training configuration (JSON).")
flags.DEFINE_string("train_csv", None, "train.csv from preprocessing.py.")
flags.DEFINE_string("val_csv", None, "val.csv from preprocessing.py; without it, no validation.")
flags.DEFINE_integer("max_steps", None, "Overrides the configuration's max_steps.")
flags.DEFINE_list("patch_size", None, "Overrides the configuration's patch_size (z,y,x voxels), e.g. for a smaller GPU.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "train_csv"])

NETWORKS = ("unet", "asym_unet", "fcn")
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


def optimizer(config: dict, max_steps: int):
    import keras

    from dltk2.training import learning_rate_schedule

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
    import tensorflow as tf

    from reader import read_fn
    from dltk2.callbacks import SegmentationValidation
    from dltk2.datasets import synapse
    from dltk2.inference import SlidingWindowSegmenter
    from dltk2.io.image import read_image_information
    from dltk2.io.orientation import axis_codes
    from dltk2.io.reader import Mode, Reader, read_csv_columns
    from dltk2.losses import SegmentationLoss
    from dltk2.networks.fcn import residual_fcn_3d
    from dltk2.networks.unet import asymmetric_residual_unet_3d, residual_unet_3d
    from dltk2.run_config import RunConfig
    from dltk2.training import TrainingRun

    networks = {"unet": residual_unet_3d, "asym_unet": asymmetric_residual_unet_3d, "fcn": residual_fcn_3d}
    config = load_config(FLAGS.config)
    max_steps = FLAGS.max_steps or config["max_steps"]
    run = TrainingRun(run_settings())
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
                                                run.folder.logs, batch_size=config["batch_size"]))

    with run.strategy.scope():
        model = networks[config["net"]](
            input_shape=(None, None, None, 1), num_classes=config["num_classes"],
            num_res_units=config["num_residual_units"], filters=config["filters"], strides=config["strides"],
            l2_regularisation=config.get("l2", 0.0), name=f"synapse_{config['net']}",
        )
        model.compile(optimizer=optimizer(config, max_steps), loss=SegmentationLoss(config["loss"]))
    geometry = read_image_information(train_cases["imgs"].iloc[0]).geometry
    low, high = synapse.HU_WINDOW
    run.write_config(RunConfig(
        application="synapse_ct_seg", task="segmentation", example_size=patch, spacing_mm=list(geometry.spacing),
        orientation=axis_codes(geometry.direction), intensity={"method": "window", "low": low, "high": high},
        class_names=["background", *synapse.ORGANS.values()], data={"train_csv": str(Path(FLAGS.train_csv).resolve())},
        training={**{key: value for key, value in config.items() if key != "patch_size"}, "max_steps": max_steps}))
    run.announce(f"model: {model.count_params():,} parameters; {len(train_cases)} training cases")
    run.train(model, dataset, max_steps, config["steps_per_epoch"], monitor="val_mean_dice", mode="max",
              extra_callbacks=callbacks)

    if FLAGS.export:
        run.export(SlidingWindowSegmenter(run.trained_model(), patch, list(geometry.spacing), synapse.HU_WINDOW,
                                          num_classes=config["num_classes"]))


if __name__ == "__main__":
    run(main)
