"""The Synapse (BTCV) multi-organ CT segmentation workflow: training from a JSON configuration.

``applications/synapse_ct_seg/train.py`` turns its flags into a :class:`TrainingConfig` and calls
:func:`run_training`; a notebook can do the same. The configuration file names the network
(``net``: ``unet``, ``asym_unet``, ``fcn``), optimiser (``opt``: ``adam``, ``momentum``, ``rmsprop``),
loss (``ce``, ``balce``, ``dice``, ``dice_ce``), ``filters``, ``strides``, ``num_residual_units``,
``learning_rate``, ``l2``, ``patch_size`` (z, y, x voxels), ``examples_per_volume``, ``batch_size``,
``num_classes``, ``max_steps``, ``steps_per_epoch`` and optionally ``schedule`` (``constant`` or
``cosine``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dltk2.errors import DataError
from dltk2.training.run import RunSettings

NETWORKS = ("unet", "asym_unet", "fcn")
REQUIRED = ("net", "opt", "loss", "filters", "strides", "num_residual_units", "learning_rate", "patch_size",
            "examples_per_volume", "batch_size", "num_classes", "max_steps", "steps_per_epoch")
OPTIMIZERS = ("adam", "momentum", "rmsprop")


def load_network_config(path: str | Path) -> dict:
    """Reads and checks a training configuration file.

    Raises:
        DataError: Not JSON, a missing key or an unknown network or optimiser, naming the file.
    """
    try:
        config = json.loads(Path(path).read_text())
    except OSError as error:
        raise DataError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:
        raise DataError(f"{path}: not JSON ({error})") from None
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}")
    if config["net"] not in NETWORKS:
        raise DataError(f"{path}: net must be one of {sorted(NETWORKS)}, got {config['net']!r}")
    if config["opt"] not in OPTIMIZERS:
        raise DataError(f"{path}: opt must be one of {sorted(OPTIMIZERS)}, got {config['opt']!r}")
    return config


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own.

    Attributes:
        data_csv: train.csv from preprocessing (``id, imgs, lbls``).
        network: The checked training configuration (:func:`load_network_config`).
        validation_csv: val.csv; None: no validation (and no best checkpoint by Dice).
        max_steps: Overrides the configuration's.
        patch_size: Overrides the configuration's (z, y, x).
    """

    data_csv: str
    network: dict
    validation_csv: str | None = None
    max_steps: int | None = None
    patch_size: list[int] | None = None


def optimizer(network: dict, max_steps: int):
    """The configuration's optimiser with its learning-rate schedule over ``max_steps``."""
    import keras

    from dltk2.training import learning_rate_schedule

    rate = learning_rate_schedule(network["learning_rate"], network.get("schedule", "constant"), max_steps)
    return {"adam": lambda: keras.optimizers.Adam(rate),
            "momentum": lambda: keras.optimizers.SGD(rate, momentum=0.9, nesterov=True),
            "rmsprop": lambda: keras.optimizers.RMSprop(rate)}[network["opt"]]()


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Trains (resuming) on class-balanced patches, validates by sliding window, exports. Returns the folder."""
    import tensorflow as tf

    from dltk2.apps.segmentation import check_cases
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

    network = dict(config.network)
    if config.patch_size:
        network["patch_size"] = [int(size) for size in config.patch_size]
    max_steps = config.max_steps or network["max_steps"]
    patch = list(network["patch_size"])
    columns = ["id", "imgs", "lbls"]
    train_cases = read_csv_columns(config.data_csv, columns, path_columns=columns[1:])[columns]
    val_cases = (read_csv_columns(config.validation_csv, columns, path_columns=columns[1:])
                 if config.validation_csv else None)
    # Every case's headers before anything is built: a missing or mismatched file is one line now,
    # not a traceback from the reader's threads after the network was built.
    for cases in (train_cases, val_cases):
        if cases is not None:
            check_cases([{"image": row.imgs, "label": row.lbls} for row in cases.itertuples()])
    run = TrainingRun(settings)
    reader = Reader(synapse.read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                    {"features": {"x": patch + [1]}, "labels": {"y": patch}})
    params = {"example_size": patch, "n_examples": network["examples_per_volume"]}
    dataset = reader.dataset(train_cases, Mode.TRAIN, params, batch_size=network["batch_size"],
                             shuffle_buffer_size=4 * network["examples_per_volume"])
    callbacks = []
    if val_cases is not None:
        callbacks.append(SegmentationValidation(list(zip(val_cases["imgs"], val_cases["lbls"])), patch,
                                                {0: "background", **synapse.ORGANS}, run.folder.logs,
                                                batch_size=network["batch_size"]))
    build = {"unet": residual_unet_3d, "asym_unet": asymmetric_residual_unet_3d, "fcn": residual_fcn_3d}[network["net"]]
    with run.strategy.scope():
        model = build(input_shape=(None, None, None, 1), num_classes=network["num_classes"],
                      num_res_units=network["num_residual_units"], filters=network["filters"],
                      strides=network["strides"], l2_regularisation=network.get("l2", 0.0),
                      name=f"synapse_{network['net']}")
        model.compile(optimizer=optimizer(network, max_steps), loss=SegmentationLoss(network["loss"]))
    geometry = read_image_information(train_cases["imgs"].iloc[0]).geometry
    low, high = synapse.HU_WINDOW
    run.write_config(RunConfig(
        application="synapse_ct_seg", task="segmentation", example_size=patch, spacing_mm=list(geometry.spacing),
        orientation=axis_codes(geometry.direction), intensity={"method": "window", "low": low, "high": high},
        class_names=["background", *synapse.ORGANS.values()], data={"train_csv": str(Path(config.data_csv).resolve())},
        training={**{key: value for key, value in network.items() if key != "patch_size"}, "max_steps": max_steps}))
    run.announce(f"model: {model.count_params():,} parameters; {len(train_cases)} training cases")
    run.train(model, dataset, max_steps, network["steps_per_epoch"], monitor="val_mean_dice", mode="max",
              extra_callbacks=callbacks)
    if settings.export:
        run.export(SlidingWindowSegmenter(run.trained_model(), patch, list(geometry.spacing), synapse.HU_WINDOW,
                                          num_classes=network["num_classes"], orientation=axis_codes(geometry.direction)))
    return run.path
