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
from typing import Sequence

import numpy as np
import pandas as pd

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
        fold: Cross-validation: ``data_csv`` is preprocessing's ``folds.csv`` (a ``fold`` column);
            fold ``fold`` validates, the others train (``validation_csv`` is then unused).
    """

    data_csv: str
    network: dict
    validation_csv: str | None = None
    max_steps: int | None = None
    patch_size: list[int] | None = None
    fold: int | None = None


def fold_cases(folds_csv: str | Path, fold: int):
    """``(training, validation)`` cases of fold ``fold`` of preprocessing's ``folds.csv`` (``id, imgs, lbls, ..., fold``).

    Raises:
        CsvError: No ``fold`` column (not a folds.csv).
        DataError: A fold that holds no case.
    """
    from dltk2.io.reader import read_csv_columns

    columns = ["id", "imgs", "lbls", "orig_imgs", "orig_lbls", "fold"]
    table = read_csv_columns(folds_csv, columns, path_columns=columns[1:5])
    folds = table["fold"].astype(int)
    if fold not in set(folds):
        raise DataError(f"{folds_csv}: no case of fold {fold} (folds {sorted(set(folds))})")
    return table[folds != fold].reset_index(drop=True), table[folds == fold].reset_index(drop=True)


def cross_validate(model_paths: Sequence[str | Path], output_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    """Each fold's model segments its own validation cases; Dice and HD95 per organ over all; postprocessing chosen.

    The out-of-fold label maps (each case segmented by the one model that never trained on it) go to
    ``<output_dir>/fold<k>/``; every case of ``folds.csv`` must be segmented exactly once. Printed and
    written: ``cross_validation.csv`` (per organ: Dice and HD95 pooled over cases, mean and spread over
    folds) and ``postprocessing.json``: per organ, the mean Dice with and without keeping its largest
    connected component, and whether to keep it (:func:`dltk2.inference.postprocessing.choose_postprocessing`).

    Returns:
        ``(summary, postprocessing)``.

    Raises:
        DataError: Folders that are not the folds 0..k-1 of one folds.csv.
    """
    from dltk2.apps.segmentation import segment_cases
    from dltk2.cross_validation import out_of_fold, summarise_folds
    from dltk2.datasets import synapse
    from dltk2.inference import load_predictor
    from dltk2.inference.postprocessing import choose_postprocessing
    from dltk2.io.atomic import write_csv_atomically, write_text_atomically
    from dltk2.io.image import read_array
    from dltk2.io.reader import read_csv_columns
    from dltk2.model_folder import ModelFolder

    datas = [ModelFolder(path).read_config().data for path in model_paths]
    folds_csvs = {d.get("train_csv") for d in datas}
    folds = sorted(d.get("fold", -1) for d in datas)
    if len(folds_csvs) != 1 or folds != list(range(len(datas))):
        raise DataError(f"{', '.join(map(str, model_paths))}: not the folds 0..k-1 of one folds.csv "
                        f"(folds {folds}, CSVs {sorted(map(str, folds_csvs))})")
    (folds_csv,) = folds_csvs
    output_dir = Path(output_dir)
    tables, predictions, references = [], [], []
    for path, data in sorted(zip(model_paths, datas), key=lambda pair: pair[1]["fold"]):
        _, validation = fold_cases(folds_csv, int(data["fold"]))
        cases = [{"id": row.id, "image": row.orig_imgs, "label": row.orig_lbls} for row in validation.itertuples()]
        results = segment_cases(load_predictor(path), cases, output_dir / f"fold{data['fold']}", synapse.ORGANS,
                                overlays=False)
        tables.append(results)
        for case, result in zip(cases, results.itertuples()):
            predictions.append(read_array(result.output_path, dtype=np.int32)[0])
            references.append(read_array(case["label"], dtype=np.int32)[0])
    every = read_csv_columns(folds_csv, ["id"])["id"]
    table = out_of_fold(tables, "id", expected_ids=every)
    metrics = [c for c in table.columns if c.startswith(("dice/", "hd95_mm/"))]
    finite = table.replace([np.inf, -np.inf], np.nan)  # a missed organ's HD95 is counted as missed, not averaged
    summary = summarise_folds(finite, "segmentation", metrics=["mean_dice", *metrics])
    decision = choose_postprocessing(predictions, references, sorted(synapse.ORGANS))
    write_csv_atomically(summary, output_dir / "cross_validation.csv", float_format="%.4f")
    write_text_atomically(output_dir / "postprocessing.json", json.dumps(
        {synapse.ORGANS[c]: row for c, row in decision.items()}, indent=1))
    return summary, decision


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
    if config.fold is None:
        train_cases = read_csv_columns(config.data_csv, columns, path_columns=columns[1:])[columns]
        val_cases = (read_csv_columns(config.validation_csv, columns, path_columns=columns[1:])
                     if config.validation_csv else None)
    else:
        train_cases, val_cases = fold_cases(config.data_csv, config.fold)
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
        class_names=["background", *synapse.ORGANS.values()],
        data={"train_csv": str(Path(config.data_csv).resolve()),
              **({"fold": config.fold} if config.fold is not None else {})},
        training={**{key: value for key, value in network.items() if key != "patch_size"}, "max_steps": max_steps}))
    run.announce(f"model: {model.count_params():,} parameters; {len(train_cases)} training cases")
    run.train(model, dataset, max_steps, network["steps_per_epoch"], monitor="val_mean_dice", mode="max",
              extra_callbacks=callbacks)
    if settings.export:
        run.export(SlidingWindowSegmenter(run.trained_model(), patch, list(geometry.spacing), synapse.HU_WINDOW,
                                          num_classes=network["num_classes"], orientation=axis_codes(geometry.direction)))
    return run.path
