"""Runs in stages: fastai's ``fine_tune`` (head first) and progressive resizing, each stage resumable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf

from dltk2.checkpoints import final_weights_into, is_better, prune_finished, steps_done
from dltk2.training.loop import best_logged, prepare_model_dir, train
from dltk2.training.models import freeze_all_but, resize_input

logger = logging.getLogger(__name__)


def fine_tune(
    model: keras.Model,
    compile_fn,
    train_dataset: tf.data.Dataset,
    model_path: str | Path,
    epochs: int,
    freeze_epochs: int = 1,
    steps_per_epoch: int = 100,
    head_layers: Sequence[str] = ("fc",),
    learning_rate: float = 1e-3,
    validation_dataset: tf.data.Dataset | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    initial_best: float | None = None,
    verbose: int = 2,
) -> float | None:
    """fastai's ``fine_tune``: train the head with the rest frozen, then everything at half the rate.

    1. ``freeze_epochs`` epochs (of ``steps_per_epoch`` steps) with only ``head_layers`` trainable, at
       ``learning_rate``, in ``<model_path>/frozen/``.
    2. ``epochs`` epochs with every layer trainable at ``learning_rate / 2``, in
       ``<model_path>/unfrozen/``, starting from the weights at the end of step 1.

    Each part is a resumable :func:`train` run of its own folder (a killed run continues where it
    stopped). The best checkpoint of a part is written only when it beats every earlier score
    (``initial_best``, then part 1's). fastai's discriminative learning rates are left out.

    Args:
        model: A built model (inside the strategy scope where one is used).
        compile_fn: ``compile_fn(model, learning_rate, steps)`` compiles ``model`` with a fresh
            optimizer whose schedule spans ``steps`` (it is called once per part).
        train_dataset: Endless batches.
        model_path: Folder holding ``frozen/`` and ``unfrozen/``.
        epochs, freeze_epochs: Epochs of each part (``freeze_epochs`` 0: only part 2).
        steps_per_epoch: Steps between checkpoints and validation.
        head_layers: Names of the layers part 1 trains.
        learning_rate: Part 1's rate; part 2 uses half of it.
        validation_dataset, monitor, mode, verbose: As for :func:`train`.
        initial_best: A score from before (an earlier stage) the best checkpoints must beat.

    Returns:
        The best ``monitor`` value so far (``initial_best`` if no epoch beat it; None without
        validation).
    """
    model_path = Path(model_path)
    best = initial_best
    parts = [("frozen", freeze_epochs, learning_rate, list(head_layers)), ("unfrozen", epochs, learning_rate / 2, None)]
    for name, part_epochs, rate, trainable in parts:
        if part_epochs <= 0:
            continue
        if trainable is None:
            for layer in model.layers:
                layer.trainable = True
        else:
            freeze_all_but(model, trainable)
        steps = part_epochs * steps_per_epoch
        compile_fn(model, rate, steps)
        folder = prepare_model_dir(model_path / name)
        if steps_done(folder) >= steps:  # finished before: take its final weights
            final_weights_into(model, folder)
        else:
            train(model, train_dataset, folder, steps, steps_per_epoch, validation_dataset=validation_dataset,
                  monitor=monitor, mode=mode, verbose=verbose, initial_best=best)
        logged = best_logged(folder, monitor, mode) if validation_dataset is not None else None
        if logged is not None and is_better(logged, best, mode):
            best = logged
        if name == "frozen" and epochs > 0:  # the whole network continues from its last.keras
            prune_finished(folder)
    for layer in model.layers:
        layer.trainable = True
    return best



def best_checkpoint(model_path: str | Path) -> Path | None:
    """The newest ``checkpoints/best.keras`` under ``model_path`` (any depth), or None.

    With :func:`fine_tune` and :func:`train_progressively` every later best checkpoint beats all
    earlier scores, so the newest one is the best of the whole run.
    """
    candidates = sorted(Path(model_path).glob("**/checkpoints/best.keras"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None



def train_progressively(
    model: keras.Model,
    stages: Sequence[dict],
    compile_fn,
    datasets_fn,
    model_path: str | Path,
    steps_per_epoch: int = 100,
    head_layers: Sequence[str] = ("fc",),
    monitor: str = "val_loss",
    mode: str = "min",
    verbose: int = 2,
) -> tuple[keras.Model, float | None]:
    """Progressive resizing: the same weights trained at growing input sizes, stage after stage.

    Each stage is a :func:`fine_tune` of the model rebuilt by :func:`resize_input` for the stage's
    input shape, in ``<model_path>/stage<k>_<d>x<h>x<w>/``, starting from the weights at the end of
    the previous stage. A later stage's best checkpoint is written only if it beats every earlier
    one, so :func:`best_checkpoint` finds the best of all stages. Resumable at any point.

    Args:
        model: Built model; its input shape is replaced stage by stage.
        stages: Dicts with ``input_shape`` (no batch axis), ``epochs``, and optionally
            ``freeze_epochs`` (default 0) and ``learning_rate`` (default 1e-3).
        compile_fn: See :func:`fine_tune`.
        datasets_fn: ``datasets_fn(input_shape) -> (train_dataset, validation_dataset or None)``.
        model_path: The run's folder.
        steps_per_epoch, head_layers, monitor, mode, verbose: See :func:`fine_tune`.

    Returns:
        ``(model at the last stage's shape with its final weights, best monitor value)``.
    """
    model_path = Path(model_path)
    best = None
    for number, stage in enumerate(stages, start=1):
        shape = tuple(stage["input_shape"])
        model = resize_input(model, shape)
        train_dataset, validation_dataset = datasets_fn(shape)
        folder = model_path / f"stage{number}_{'x'.join(str(d) for d in shape[:-1])}"
        print(f"stage {number}/{len(stages)}: input {'x'.join(str(d) for d in shape[:-1])}, "
              f"{stage.get('freeze_epochs', 0)} epoch(s) head only then {stage['epochs']} whole, {steps_per_epoch} "
              f"steps each, in {folder}", flush=True)
        best = fine_tune(model, compile_fn, train_dataset, folder, stage["epochs"], stage.get("freeze_epochs", 0),
                         steps_per_epoch, head_layers, stage.get("learning_rate", 1e-3), validation_dataset,
                         monitor, mode, initial_best=best, verbose=verbose)
        if number < len(stages):  # the next stage starts from this one's final weights
            for part in ("frozen", "unfrozen"):
                prune_finished(folder / part)
    final = best_checkpoint(model_path)
    for superseded in model_path.glob("**/checkpoints/best.keras"):  # an earlier stage's best, beaten since
        if final is not None and superseded != final:
            superseded.unlink()
    return model, best

