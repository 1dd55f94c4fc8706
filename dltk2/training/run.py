"""The start and end every training run shares, in one place.

A ``train.py`` checks its inputs, then::

    run = TrainingRun(settings)                 # verbosity, model folder (locked, resumed), strategy, precision
    with run.strategy.scope():
        model = ...                             # the application's network, compiled
    run.write_config(RunConfig(...))            # one schema across applications
    run.announce(f"model: {model.count_params():,} parameters; ...")
    run.train(model, dataset, max_steps, steps_per_epoch, validation_dataset=...)
    run.export(predictor_of(run.trained_model()))   # model.keras, predictor.json, SavedModel

:class:`RunSettings` are the settings every run takes (``--model_path``, ``--restart``, ``--verbose``,
``--precision``, ``--devices``, ``--export``); the command line builds them from its flags
(:func:`dltk2.cli.run_settings`), a notebook directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import keras
import tensorflow as tf
from absl import logging as absl_logging

from dltk2.checkpoints import steps_done
from dltk2.model_folder import ModelFolder
from dltk2.run_config import RunConfig
from dltk2.training.distribution import select_precision_policy, select_strategy
from dltk2.training.loop import prepare_model_dir, train
from dltk2.training.models import as_float32, load_trained_model

logger = logging.getLogger(__name__)


@dataclass
class RunSettings:
    """What every training run is told, besides its data and network.

    Attributes:
        model_path: The model folder (created; resumed when it holds a run).
        restart: Empty the folder first.
        verbose: INFO logs and a progress bar per epoch (else one line per epoch).
        precision: ``auto``, ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
        devices: Devices for ``MirroredStrategy``; empty: every GPU.
        export: Write ``model.keras``, ``predictor.json`` and a SavedModel when training ends.
    """

    model_path: str | Path
    restart: bool = False
    verbose: bool = False
    precision: str = "auto"
    devices: Sequence[str] = field(default_factory=list)
    export: bool = True


class TrainingRun:
    """One training run in its model folder: set up on construction, trained, exported.

    Construct it after the inputs are checked: it takes the folder's lock (and, with ``restart``,
    empties it), and chooses the strategy and precision policy.

    Attributes:
        settings: The :class:`RunSettings`.
        folder: The :class:`~dltk2.model_folder.ModelFolder`.
        strategy: Build and compile the model inside ``strategy.scope()``.
        policy: The precision policy in force.
    """

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        absl_logging.set_verbosity(absl_logging.INFO if settings.verbose else absl_logging.WARNING)
        self.folder = ModelFolder(prepare_model_dir(settings.model_path, restart=settings.restart))
        self.strategy = select_strategy(list(settings.devices) or None)
        self.policy = select_precision_policy(settings.precision)

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def keras_verbosity(self) -> int:
        """Keras' ``verbose``: a progress bar with ``--verbose``, else one line per epoch."""
        return 1 if self.settings.verbose else 2

    def write_config(self, config: RunConfig) -> RunConfig:
        """Writes the run configuration, with this run's precision and replica count in ``training``."""
        config = config.updated(training={"precision": self.policy, "replicas": self.replicas})
        self.folder.write_config(config)
        return config

    def announce(self, what: str) -> None:
        """Prints ``what``, the precision, the replicas and the TensorBoard command, on one line."""
        print(f"{what}; precision {self.policy}; {self.replicas} replica(s); "
              f"TensorBoard: tensorboard --logdir {self.folder.logs}", flush=True)

    def train(self, model: keras.Model, dataset: tf.data.Dataset, max_steps: int, steps_per_epoch: int,
              **options: Any) -> dict[str, list[float]]:
        """:func:`dltk2.training.train` in this folder, saying where a resumed run continues."""
        done = steps_done(self.path)
        if done:
            print(f"resuming {self.path} at step {done} of {max_steps}", flush=True)
        options.setdefault("verbose", self.keras_verbosity)
        return train(model, dataset, self.path, max_steps, steps_per_epoch, **options)

    def trained_model(self, which: str = "best", path: str | Path | None = None) -> keras.Model:
        """The trained model in float32 (global policy float32 from here on): best or last checkpoint.

        Args:
            which: ``best`` (falling back to ``last``) or ``last``.
            path: A checkpoint file to load instead (e.g. the best of a staged run).
        """
        keras.mixed_precision.set_global_policy("float32")
        if path is not None:
            from dltk2.checkpoints import load_checkpoint

            return as_float32(load_checkpoint(Path(path)))
        return as_float32(load_trained_model(self.path, which))

    def export(self, predictor, warmup_inputs=None, note: str = "") -> tuple[Path, Path] | None:
        """Exports ``predictor`` (:func:`dltk2.export.export_predictor`) unless ``export`` is off."""
        if not self.settings.export:
            return None
        from dltk2.export import export_predictor

        keras_file, saved_model = export_predictor(self.folder, predictor, warmup_inputs)
        print(f"exported {keras_file} and SavedModel {saved_model}{note}", flush=True)
        print(f"model folder {self.path}: {self.folder.describe_disk_use()}", flush=True)
        return keras_file, saved_model
