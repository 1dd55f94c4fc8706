"""The resumable training loop: ``train`` runs ``max_steps`` optimizer steps in checkpointed epochs.

An "epoch" here is a checkpoint interval of ``steps_per_epoch`` steps over an endless training
dataset, as DLTK's ``save_checkpoints_steps``. A killed run restarts from the last committed
interval: the optimizer's step count, weights and moments continue from there. Every file is
written to a temporary name and renamed, the state file last (:mod:`dltk2.checkpoints`), so a kill
at any moment leaves a folder that resumes. The folder's layout is :class:`dltk2.model_folder.ModelFolder`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from pathlib import Path
from typing import Sequence

import keras
import pandas as pd
import tensorflow as tf

from dltk2.checkpoints import EpochCommit, clear_model_folder, is_better, read_state, steps_done
from dltk2.io.locks import lock_folder
from dltk2.model_folder import ModelFolder
from dltk2.progress import TrainingProgress
from dltk2.training.distribution import is_chief_by_config
from dltk2.training.multi_worker import train_multi_worker

logger = logging.getLogger(__name__)


def prepare_model_dir(model_path: str | Path, restart: bool = False) -> Path:
    """Creates the model folder and takes its lock for this process; with ``restart``, empties it first.

    Without ``restart`` an existing folder is kept and training resumes from it. Deleting is never
    implicit, and never happens under another process: a folder another run is training in is
    refused in one line before anything is changed.

    The workers of one multi-worker run (``TF_CONFIG``) share the folder: its chief holds the lock
    (and alone empties it on ``restart``).

    Raises:
        ResourceError: Another process holds the folder (:func:`dltk2.io.locks.lock_folder`).
    """
    model_path = Path(model_path)
    if not is_chief_by_config():
        ModelFolder(model_path).checkpoints.mkdir(parents=True, exist_ok=True)
        return model_path
    lock_folder(model_path, "model folder")
    if restart:
        logger.warning("--restart: deleting the contents of %s", model_path)
        clear_model_folder(model_path)
    ModelFolder(model_path).checkpoints.mkdir(parents=True, exist_ok=True)
    return model_path



@contextlib.contextmanager
def finite_input():
    """A block in which a dataset's end is not reported as "Your input ran out of data".

    Keras learns the length of a dataset of unknown cardinality (the readers' ``unbatch`` hides it)
    when its first pass ends, and reports that end as an interruption of training, though an
    evaluation of a finite set is meant to end there: ``model.evaluate`` of the chest classifier's
    validation images printed it after stage 1.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        yield


class _ValidationEndIsNotAnInterruption(keras.callbacks.Callback):
    """Silences Keras' "Your input ran out of data; interrupting training" while it validates.

    Keras learns the length of a validation set of unknown cardinality (the readers' ``unbatch``
    hides it) when its first pass ends, and reports that end with this warning, though a finite
    validation set is meant to end there. The filter holds only from the start to the end of each
    validation pass, so a training set that runs out is still reported.
    """

    def __init__(self) -> None:
        super().__init__()
        self._silenced = None

    def on_test_begin(self, logs=None):
        self._silenced = finite_input()
        self._silenced.__enter__()

    def on_test_end(self, logs=None):
        if self._silenced is not None:
            self._silenced.__exit__(None, None, None)
            self._silenced = None



class GlobalStepTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard with the epoch's scalars at the optimizer step, not the epoch number.

    dltk2's own summaries (per-organ Dice, overlays) are written at the step; with Keras' epoch
    axis beside them the two could not be read on one chart, and a resumed staged run restarted its
    epochs at 0 in each stage.
    """

    def on_epoch_end(self, epoch, logs=None):
        self._log_epoch_metrics(int(self.model.optimizer.iterations.numpy()), logs)


def training_callbacks(
    model_path: str | Path,
    monitor: str | None = "val_loss",
    mode: str = "min",
    max_steps: int = 0,
    steps_per_epoch: int = 1,
    extra: Sequence[keras.callbacks.Callback] = (),
    initial_best: float | None = None,
) -> list[keras.callbacks.Callback]:
    """The callbacks every dltk2 training run uses.

    ``extra`` callbacks come first, so that metrics they add to an epoch's logs (a validation Dice, say)
    can choose the best checkpoint. Then a filter that keeps Keras from reporting the end of a
    validation pass as an interruption, the epoch's commit (:class:`dltk2.checkpoints.EpochCommit`:
    backup, last and best ``.keras`` checkpoints, ``history.csv``, the state file last) and
    TensorBoard under ``logs/``. Without a ``monitor``, no best checkpoint; with ``initial_best``,
    only an epoch better than it is saved as best (e.g. the score of the model before fine-tuning,
    which the caller keeps).
    """
    model_path = Path(model_path)
    return list(extra) + [
        _ValidationEndIsNotAnInterruption(),
        EpochCommit(model_path, max_steps, steps_per_epoch, monitor, mode, initial_best),
        GlobalStepTensorBoard(log_dir=str(ModelFolder(model_path).logs), update_freq="epoch"),
    ]



def train(
    model: keras.Model,
    train_dataset: tf.data.Dataset,
    model_path: str | Path,
    max_steps: int,
    steps_per_epoch: int = 100,
    validation_dataset: tf.data.Dataset | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    verbose: int = 2,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    initial_best: float | None = None,
) -> dict[str, list[float]]:
    """Trains a compiled model for ``max_steps`` optimizer steps in total, resuming a previous run.

    ``max_steps`` counts from the very first step of the model folder, so a resumed run stops at the
    same total a run that was never interrupted would.

    Args:
        model: A compiled, built model (built inside the strategy scope where one is used).
        train_dataset: An endless (repeated) dataset of (features, labels) batches.
        model_path: The model folder (see module docstring).
        max_steps: Total optimizer steps.
        steps_per_epoch: Steps between checkpoints, validation and TensorBoard summaries.
        validation_dataset: Finite dataset evaluated after each epoch; None to skip validation.
        monitor: Metric that picks the best checkpoint (with a validation dataset, or one that an
            extra callback such as :class:`dltk2.callbacks.SegmentationValidation` adds).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        verbose: 2 (default): a line every 30 s and one per epoch (:class:`dltk2.progress.TrainingProgress`),
            readable in a log file; 1: Keras' progress bar; 0: nothing.
        extra_callbacks: Appended to :func:`training_callbacks`.
        initial_best: The ``monitor`` value an epoch must beat to be saved as the best checkpoint.

    Returns:
        The logs of each epoch of this (possibly resumed) run, as ``History.history``.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    steps_per_epoch = max(1, min(steps_per_epoch, max_steps))
    epochs = math.ceil(max_steps / steps_per_epoch)
    state = read_state(model_path)
    if state and not (state.get("best") or {}).get("value") and monitor:
        # A folder from before EpochCommit kept no best score: take the best logged.
        logged = best_logged(model_path, monitor, mode)
        if logged is not None and is_better(logged, initial_best, mode):
            initial_best = logged
    callbacks = training_callbacks(
        model_path,
        # Validation comes from the dataset, or from an extra callback that adds its own metric.
        monitor=monitor if validation_dataset is not None or extra_callbacks else None,
        mode=mode,
        max_steps=max_steps,
        steps_per_epoch=steps_per_epoch,
        extra=extra_callbacks,
        initial_best=initial_best,
    )
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        if validation_dataset is not None:
            logger.warning("validation is skipped under MultiWorkerMirroredStrategy; evaluate the checkpoints")
        return train_multi_worker(model, train_dataset, model_path, max_steps, steps_per_epoch)
    commit = next(callback for callback in callbacks if isinstance(callback, EpochCommit))
    if verbose == 2:  # after the commit, which keeps the best epoch
        callbacks.append(TrainingProgress(max_steps, steps_per_epoch, best_epoch=lambda: commit.best_epoch))
        verbose = 0
    commit.set_model(model)
    initial_epoch = commit.restore()  # weights, optimizer state and step count of the last commit
    if initial_epoch:
        logger.info("resuming %s at step %d of %d", model_path, steps_done(model_path), max_steps)
    try:
        history = model.fit(
            train_dataset,
            epochs=epochs,
            initial_epoch=min(initial_epoch, epochs),
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_dataset,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # tf.data shuffles; Keras would only warn
        )
    finally:  # a validation pass that failed never reached on_test_end
        for callback in callbacks:
            if isinstance(callback, _ValidationEndIsNotAnInterruption):
                callback.on_test_end()
    return history.history



def best_logged(model_path: str | Path, monitor: str, mode: str = "min") -> float | None:
    """The best ``monitor`` value in a model folder's ``history.csv`` (None without one)."""
    path = ModelFolder(model_path).history
    if not path.exists() or path.stat().st_size == 0:
        return None
    history = pd.read_csv(path)
    if monitor not in history or history[monitor].dropna().empty:
        return None
    values = history[monitor].dropna()
    return float(values.max() if mode == "max" else values.min())

