"""Training under ``MultiWorkerMirroredStrategy``, which Keras 3's ``fit`` cannot do."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from dltk2.checkpoints import EpochCommit
from dltk2.model_folder import ModelFolder
from dltk2.training.distribution import is_chief

logger = logging.getLogger(__name__)


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
    chief = is_chief(strategy)
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

    writer = tf.summary.create_file_writer(str(ModelFolder(model_path).logs / "train")) if chief else None
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

