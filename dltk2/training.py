"""Distribution strategy, precision policy, callbacks and a resumable training loop.

A training run lives in one model folder::

    <model_path>/
      .lock              held by the process training in it (a second one is refused)
      backup/            weights + optimizer state of the last two committed epochs, for resuming
      checkpoints/       last.keras (every epoch), best.keras (best validation score)
      logs/              TensorBoard events (train/ and validation/)
      history.csv        one row of logs per committed epoch
      training_state.json  the commit: epoch, steps done, its backup, the best score

An "epoch" here is a checkpoint interval of ``steps_per_epoch`` steps over an endless training
dataset, as DLTK's ``save_checkpoints_steps``. A killed run restarts from the last committed
interval: the optimizer's step count, weights and moments continue from there. Every file is
written to a temporary name and renamed, the state file last (:mod:`dltk2.checkpoints`), so a kill
at any moment leaves a folder that resumes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import keras
import pandas as pd
import tensorflow as tf

from dltk2.checkpoints import (EpochCommit, clear_model_folder, final_weights_into, is_better, load_checkpoint,
                               read_state, replace_atomically, steps_done)
from dltk2.io.atomic import write_text_atomically
from dltk2.io.locks import lock_folder
from dltk2.networks import layers as _layers  # noqa: F401  (registers dltk2's layers for loading)
from dltk2.networks import transfer as _transfer  # noqa: F401  (registers GreyToBackboneInput)
from dltk2 import metrics as _metrics  # noqa: F401  (registers PositiveClassAUC)

logger = logging.getLogger(__name__)

PRECISION_POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def select_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Chooses how to distribute training.

    * ``TF_CONFIG`` names a cluster of more than one worker: ``MultiWorkerMirroredStrategy``.
    * ``devices`` lists more than one device, or several GPUs are visible: ``MirroredStrategy``.
    * Otherwise the default strategy (one device).

    Args:
        devices: Device names such as ``["/gpu:0", "/gpu:1"]`` or ``["/cpu:0", "/cpu:1"]``.

    Returns:
        The strategy; build and compile the model inside ``strategy.scope()``.
    """
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    if len(workers) > 1:
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=communication
        )
    elif devices is not None and len(devices) > 1:
        cross_device_ops = (
            tf.distribute.HierarchicalCopyAllReduce()
            if not any("gpu" in d.lower() for d in devices)
            else None
        )
        strategy = tf.distribute.MirroredStrategy(devices=list(devices), cross_device_ops=cross_device_ops)
    elif devices is None and len(tf.config.list_logical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
    elif devices:
        strategy = tf.distribute.OneDeviceStrategy(devices[0])
    else:
        strategy = tf.distribute.get_strategy()
    logger.info("strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def select_precision_policy(policy: str = "auto") -> str:
    """Sets Keras' global dtype policy and returns its name.

    ``auto`` gives ``mixed_float16`` where a GPU is visible and ``float32`` on CPU: float16 has no CPU
    kernels for MaxPool3D / AvgPool3D. ``mixed_bfloat16`` works on CPU and on recent GPUs.

    Raises:
        ValueError: Unknown policy, or ``mixed_float16`` without a GPU.
    """
    if policy not in PRECISION_POLICIES:
        raise ValueError(f"unknown precision policy {policy!r}; choose one of {PRECISION_POLICIES}")
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if policy == "auto":
        policy = "mixed_float16" if has_gpu else "float32"
    if policy == "mixed_float16" and not has_gpu:
        raise ValueError(
            "mixed_float16 needs a GPU: TensorFlow has no float16 CPU kernels for 3D pooling; "
            "use float32 or mixed_bfloat16 on CPU"
        )
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _is_chief_by_config() -> bool:
    """Whether ``TF_CONFIG`` makes this process its cluster's chief (true without a cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if not task or sum(len(tasks) for tasks in cluster.values()) <= 1:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


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
    if not _is_chief_by_config():
        (model_path / "checkpoints").mkdir(parents=True, exist_ok=True)
        return model_path
    lock_folder(model_path, "model folder")
    if restart:
        logger.warning("--restart: deleting the contents of %s", model_path)
        clear_model_folder(model_path)
    (model_path / "checkpoints").mkdir(parents=True, exist_ok=True)
    return model_path


class _ValidationEndIsNotAnInterruption(keras.callbacks.Callback):
    """Silences Keras' "Your input ran out of data; interrupting training" while it validates.

    Keras learns the length of a validation set of unknown cardinality (the readers' ``unbatch``
    hides it) when its first pass ends, and reports that end with this warning, though a finite
    validation set is meant to end there. The filter holds only from the start to the end of each
    validation pass, so a training set that runs out is still reported.
    """

    def __init__(self) -> None:
        super().__init__()
        self._silenced: warnings.catch_warnings | None = None

    def on_test_begin(self, logs=None):
        self._silenced = warnings.catch_warnings()
        self._silenced.__enter__()
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)

    def on_test_end(self, logs=None):
        if self._silenced is not None:
            self._silenced.__exit__(None, None, None)
            self._silenced = None


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
        keras.callbacks.TensorBoard(log_dir=str(model_path / "logs"), update_freq="epoch"),
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
        verbose: Keras' verbosity.
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
    path = Path(model_path) / "history.csv"
    if not path.exists() or path.stat().st_size == 0:
        return None
    history = pd.read_csv(path)
    if monitor not in history or history[monitor].dropna().empty:
        return None
    values = history[monitor].dropna()
    return float(values.max() if mode == "max" else values.min())


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def train_multi_worker(
    model: keras.Model,
    train_dataset: tf.data.Dataset,
    model_path: str | Path,
    max_steps: int,
    steps_per_epoch: int,
) -> dict[str, list[float]]:
    """Trains under ``MultiWorkerMirroredStrategy``, which Keras 3's ``fit`` cannot do.

    ``fit`` fails there twice over (keras-team/keras#20585): its symbolic build reduces an eager
    PerReplica batch, and it reduces scalar metrics along axis 0. This loop runs Keras' own
    ``train_step`` on every replica with ``strategy.run`` and averages its logs across workers. Every
    ``steps_per_epoch`` steps the chief writes what :func:`train` writes (backup weights with the
    optimizer's state, ``checkpoints/last.keras``, ``training_state.json``, TensorBoard scalars); a
    restarted cluster resumes from the backup, which all workers read (a shared file system, as
    multi-worker training assumes for the model folder).

    Returns:
        The averaged logs of each epoch, like ``History.history``.
    """
    strategy = model.distribute_strategy
    model_path = Path(model_path)
    chief = _is_chief(strategy)
    with strategy.scope():
        # fit's own build step, without its failing reduce: build on one local batch.
        model._symbolic_build(data_batch=next(iter(train_dataset)))
    commit = EpochCommit(model_path, max_steps, steps_per_epoch, write=chief)
    commit.set_model(model)
    epoch = commit.restore()  # every worker reads the chief's commit (a shared file system)
    iterator = iter(strategy.experimental_distribute_dataset(train_dataset))

    def one_step(iterator):
        per_replica = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in per_replica.items()}

    @tf.function
    def train_steps(iterator, steps):
        logs = one_step(iterator)
        for _ in tf.range(steps - 1):
            logs = one_step(iterator)
        return logs

    writer = tf.summary.create_file_writer(str(model_path / "logs" / "train")) if chief else None
    history: dict[str, list[float]] = {}
    done = int(model.optimizer.iterations.numpy())
    while done < max_steps:
        model.reset_metrics()
        logs = train_steps(iterator, tf.constant(min(steps_per_epoch, max_steps - done)))
        done = int(model.optimizer.iterations.numpy())
        epoch += 1
        values = {name: float(value) for name, value in logs.items()}
        for name, value in values.items():
            history.setdefault(name, []).append(value)
        logger.info("step %d: %s", done, values)
        commit.commit(epoch, values)  # writes on the chief only
        if chief:
            with writer.as_default(step=done):
                for name, value in values.items():
                    tf.summary.scalar(f"epoch_{name}", value)
    return history


def load_trained_model(model_path: str | Path, which: str = "best") -> keras.Model:
    """Loads ``checkpoints/best.keras`` (falling back to ``last.keras``) or ``last.keras``.

    A damaged checkpoint (not a complete archive) is passed over for the next, with a warning.

    Raises:
        FileNotFoundError: No checkpoint: nothing was trained in ``model_path``.
        DataError: Every checkpoint there is damaged.
    """
    checkpoints = Path(model_path) / "checkpoints"
    names = ["best.keras", "last.keras"] if which == "best" else ["last.keras"]
    return load_checkpoint(checkpoints / names[0], [checkpoints / name for name in names[1:]])


def _float32_config(config):
    """A copy of a Keras config in which every mixed-precision dtype policy is float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name", "")).startswith("mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config


def as_float32(model: keras.Model) -> keras.Model:
    """The same model and weights computing in float32, for export and CPU inference.

    A model trained under ``mixed_float16`` keeps float16 layer policies when saved; served on a CPU it
    would fail (no float16 kernel for 3D pooling) or lose precision. Float32 models are returned as is.
    """
    config = model.get_config()
    converted = _float32_config(config)
    if converted == config:
        return model
    clone = model.__class__.from_config(converted)
    clone.set_weights(model.get_weights())
    return clone


def learning_rate_schedule(learning_rate: float, schedule: str = "constant", max_steps: int = 1):
    """A constant learning rate (DLTK), or cosine decay to zero over ``max_steps``.

    Cosine decay lets the weights settle at the end, so batch-norm moving statistics catch up with
    them; short CPU runs need that for a calibrated model at inference.
    """
    if schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, max_steps))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose 'constant' or 'cosine'")


def save_run_config(model_path: str | Path, config: dict) -> Path:
    """Writes ``run_config.json``: what deploy and export need to know about the training run."""
    return write_text_atomically(Path(model_path) / "run_config.json", json.dumps(config, indent=2, sort_keys=True))


def load_run_config(model_path: str | Path) -> dict:
    """Reads ``run_config.json`` of a model folder."""
    path = Path(model_path) / "run_config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; is {model_path} a model folder written by train.py?")
    return json.loads(path.read_text())


def resize_input(model: keras.Model, input_shape: Sequence[int | None]) -> keras.Model:
    """The same functional model and weights, rebuilt for another input shape (progressive resizing).

    Convolutional trunks with global pooling have weights that do not depend on the input size, so
    a model trained on small inputs continues on larger ones with every weight kept. The model's
    layers are rebuilt from its config with the new shape (no batch axis) and the weights copied.

    Raises:
        ValueError: A model that is not functional with one input, or weights whose shapes depend on
            the input size (a dense layer on flattened features).
    """
    config = model.get_config()
    inputs = [layer for layer in config.get("layers", []) if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ValueError(f"{model.name}: resize_input needs a functional model with one input")
    input_config = inputs[0]["config"]
    key = "batch_shape" if "batch_shape" in input_config else "batch_input_shape"
    if tuple(input_config[key][1:]) == tuple(input_shape):
        return model
    input_config[key] = [input_config[key][0], *input_shape]
    try:
        resized = model.__class__.from_config(config)
    except ValueError as error:  # a layer built for the old size (a dense layer on flattened features)
        raise ValueError(f"{model.name}: weights depend on the input size; cannot rebuild for {tuple(input_shape)}: "
                         f"{str(error).splitlines()[0]}") from None
    old, new = model.get_weights(), resized.get_weights()
    mismatched = [(a.shape, b.shape) for a, b in zip(old, new) if a.shape != b.shape]
    if mismatched:
        raise ValueError(f"{model.name}: weights depend on the input size ({mismatched[0][0]} -> {mismatched[0][1]})")
    resized.set_weights(old)
    return resized


def freeze_all_but(model: keras.Model, trainable_layers: Sequence[str]) -> None:
    """Makes only the named layers trainable (batch norm elsewhere then runs in inference mode)."""
    names = {layer.name for layer in model.layers}
    missing = [name for name in trainable_layers if name not in names]
    if missing:
        raise ValueError(f"{model.name} has no layer(s) {missing}")
    for layer in model.layers:
        layer.trainable = layer.name in trainable_layers


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
        logger.info("progressive resizing: stage %d at %s", number, shape)
        best = fine_tune(model, compile_fn, train_dataset, folder, stage["epochs"], stage.get("freeze_epochs", 0),
                         steps_per_epoch, head_layers, stage.get("learning_rate", 1e-3), validation_dataset,
                         monitor, mode, initial_best=best, verbose=verbose)
    return model, best
