"""Training: where it computes, the resumable loop, staged runs, and a run's shared start and end.

- :mod:`~dltk2.training.distribution`: :func:`select_strategy`, :func:`select_precision_policy`;
- :mod:`~dltk2.training.loop`: :func:`prepare_model_dir`, :func:`train` (resumable, one commit per
  epoch: :mod:`dltk2.checkpoints`), :func:`training_callbacks`;
- :mod:`~dltk2.training.multi_worker`: :func:`train_multi_worker` (``MultiWorkerMirroredStrategy``);
- :mod:`~dltk2.training.stages`: :func:`fine_tune` (head first) and :func:`train_progressively`;
- :mod:`~dltk2.training.models`: loading checkpoints, :func:`as_float32`, :func:`resize_input`,
  learning-rate schedules;
- :mod:`~dltk2.training.run`: :class:`TrainingRun`, the start and end every application shares.

The model folder's layout is :class:`dltk2.model_folder.ModelFolder`; its run configuration
:class:`dltk2.run_config.RunConfig`.
"""

from dltk2.checkpoints import steps_done
from dltk2.io.atomic import replace_atomically
from dltk2.training.distribution import (PRECISION_POLICIES, is_chief, is_chief_by_config, select_precision_policy,
                                         select_strategy)
from dltk2.training.loop import best_logged, prepare_model_dir, train, training_callbacks
from dltk2.training.models import (as_float32, freeze_all_but, learning_rate_schedule, load_trained_model,
                                   resize_input)
from dltk2.training.multi_worker import train_multi_worker
from dltk2.training.run import RunSettings, TrainingRun
from dltk2.training.stages import best_checkpoint, fine_tune, train_progressively


__all__ = [
    "PRECISION_POLICIES", "RunSettings", "TrainingRun", "as_float32", "best_checkpoint", "best_logged", "fine_tune",
    "freeze_all_but",
    "is_chief", "is_chief_by_config", "learning_rate_schedule", "load_trained_model",
    "prepare_model_dir", "replace_atomically", "resize_input", "select_precision_policy",
    "select_strategy", "steps_done", "train", "train_multi_worker", "train_progressively", "training_callbacks",
]
