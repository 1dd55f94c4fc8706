"""Checkpoints a kill cannot break: one commit per epoch, the state file last.

Keras writes ``last.keras`` and ``best.keras`` in place, and BackupAndRestore writes its weights and
its epoch in two steps: a SIGKILL during the final ``last.keras`` write left a folder whose every
restart said ``resuming ... at step 6 of 8``, trained nothing and failed on the half-written file.
Here each epoch ends with one commit, in this order, every file written to a temporary name and
renamed:

1. ``backup/epoch-NNNNNN.weights.h5``: weights and optimizer state after the epoch;
2. ``checkpoints/last.keras``, and ``checkpoints/best.keras`` if the epoch beat the best so far
   (models without optimizer state: :func:`save_model`);
3. ``history.csv``: the committed epochs' logs, one row per epoch;
4. ``training_state.json``, the commit itself: epoch, steps done, the backup it belongs to, the
   previous epoch's backup, and the best score with its epoch.

Then backups other than these two are deleted. A kill anywhere before step 4 leaves the previous
commit in force: the restart resumes from its backup and does the epoch again, and whatever the
killed epoch wrote is overwritten. The state file and the backup therefore always agree; a backup
that cannot be read (damaged on disk) falls back to the previous one, a ``last.keras`` that is not
a complete archive is written again from the restored weights, and a damaged ``best.keras`` is set
aside for ``last.keras`` when a model is loaded (:func:`load_checkpoint`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import zipfile
from pathlib import Path
from typing import Sequence

import keras
import pandas as pd

from dltk2.errors import DataError, first_line
from dltk2.io.atomic import replace_atomically, write_text_atomically
from dltk2.io.locks import LOCK_NAME
from dltk2.model_folder import ModelFolder

logger = logging.getLogger(__name__)

STATE_FILE = ModelFolder.TRAINING_STATE
BACKUP_DIR = ModelFolder.BACKUP


def is_complete_archive(path: str | Path) -> bool:
    """Whether a ``.keras`` file is a whole zip archive whose members' CRCs check (a cut-off one is not)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None and "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def read_state(model_path: str | Path) -> dict | None:
    """The committed state of a model folder, None for a new one.

    Raises:
        DataError: A state file that is not JSON (changed by hand, or a disk fault).
    """
    path = ModelFolder(model_path).training_state
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise DataError(f"{path}: not a training state ({first_line(error)}); use --restart") from None


def steps_done(model_path: str | Path) -> int:
    """Optimizer steps recorded in a model folder (0 for a new one)."""
    state = read_state(model_path)
    return int(state["steps_done"]) if state else 0


def is_better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (``"max"``: higher is better); anything beats None or NaN."""
    if than is None or (isinstance(than, float) and math.isnan(than)):
        return True
    return value > than if mode == "max" else value < than


def _remove_temporaries(folder: Path) -> None:
    """Temporaries of writes a kill interrupted (``.<name>.<random><suffix>``, see atomic_destination)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") and path.name != LOCK_NAME and path.is_file():
                path.unlink(missing_ok=True)


class EpochCommit(keras.callbacks.Callback):
    """Commits each epoch of a :func:`dltk2.training.train` run (see the module docstring).

    Args:
        model_path: The model folder.
        max_steps, steps_per_epoch: What the run was asked for (kept in the state).
        monitor, mode: The metric that chooses ``best.keras`` (None: no best checkpoint).
        initial_best: A score the best checkpoint must beat (an earlier stage's).
        write: False on the workers of a multi-worker run that are not the chief.
    """

    def __init__(self, model_path: str | Path, max_steps: int, steps_per_epoch: int, monitor: str | None = None,
                 mode: str = "min", initial_best: float | None = None, write: bool = True) -> None:
        super().__init__()
        self.model_path = Path(model_path)
        self.folder = ModelFolder(self.model_path)
        self.max_steps = max_steps
        self.steps_per_epoch = steps_per_epoch
        self.monitor = monitor
        self.mode = mode
        self.write = write
        state = read_state(self.model_path) or {}
        best = state.get("best") or {}
        self.best = best.get("value")
        self.best_epoch = best.get("epoch")
        if initial_best is not None and is_better(initial_best, self.best, mode):
            self.best, self.best_epoch = initial_best, None
        self.state = state

    # Restoring -------------------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[int, int, Path]]:
        """(epoch, steps, backup file) to restore from, newest first."""
        state, backup = self.state, self.folder.backup
        if not state:
            return []
        if "backup" in state:
            candidates = [(state["epoch"], state["steps_done"], backup / state["backup"])]
            previous = state.get("previous")
            if previous:
                candidates.append((previous["epoch"], previous["steps_done"], backup / previous["backup"]))
            return candidates
        # A folder written by Keras' BackupAndRestore (dltk2 before its own commits).
        candidates = []
        for suffix in ("", ".bkp"):
            try:
                epoch = json.loads((backup / f"training_metadata.json{suffix}").read_text())["epoch"]
            except (OSError, ValueError, KeyError):
                continue
            candidates.append((int(epoch), int(epoch) * state.get("steps_per_epoch", self.steps_per_epoch),
                               backup / f"latest.weights.h5{suffix}"))
        return candidates

    def restore(self) -> int:
        """Loads the newest readable backup into the model; returns the number of epochs it completed.

        Raises:
            DataError: The state names backups none of which can be read.
        """
        _remove_temporaries(self.folder.checkpoints)
        _remove_temporaries(self.folder.backup)
        candidates = self._candidates()
        if not candidates:
            return 0
        if self.model.optimizer is not None and not self.model.optimizer.built:
            with self.model.distribute_strategy.scope():
                self.model.optimizer.build(self.model.trainable_variables)
        problems = []
        for number, (epoch, steps, path) in enumerate(candidates):
            try:
                self.model.load_weights(path)
            except Exception as error:  # h5py and Keras raise many types for a damaged file
                problems.append(f"{path.name}: {type(error).__name__}: {first_line(error)}")
                continue
            if number:
                logger.warning("%s unreadable (%s); resuming from the previous backup, step %d", candidates[0][2],
                               problems[0], steps)
                print(f"warning: {candidates[0][2]} unreadable; resuming from the previous backup at step {steps}")
                self._forget_discarded_best(epoch, self.state["previous"].get("best"))
                self.state = {**self.state, "epoch": epoch, "steps_done": steps, "backup": path.name, "previous": None,
                              "best": {**(self.state.get("best") or {}), "value": self.best, "epoch": self.best_epoch}}
                if self.write:
                    write_text_atomically(self.folder.training_state, json.dumps(self.state, indent=2))
            return int(epoch)
        raise DataError(f"{self.folder.backup}: no readable backup ({'; '.join(problems)}); use --restart")

    def _forget_discarded_best(self, epochs_kept: int, previous_best: dict | None) -> None:
        """Takes back the best score of an epoch the fallback discards, so the redone epoch competes fairly.

        The discarded epoch's history row is about to be overwritten by its redo; a best score (and a
        ``best.keras``) from it would name an epoch whose recorded logs say otherwise. Where the best
        before it is the restored backup's own epoch, ``best.keras`` is written again from the
        restored weights; an older best's model was overwritten, so ``best.keras`` stays until an epoch
        beats that score, and a warning says so.
        """
        if self.best_epoch is None or self.best_epoch < epochs_kept or previous_best is None:
            return
        discarded = self.best_epoch
        self.best, self.best_epoch = previous_best.get("value"), previous_best.get("epoch")
        if self.write and self.best_epoch == epochs_kept - 1:
            save_model(self.model, self.folder.best_checkpoint)
        elif self.write:
            print(f"warning: {self.folder.best_checkpoint} holds discarded epoch {discarded}; it stays until an "
                  f"epoch beats {self.monitor} {self.best}")

    def on_train_end(self, logs=None):
        """A complete ``last.keras`` in every finished folder, rewritten from the weights if it is not."""
        last = self.folder.last_checkpoint
        if self.write and self.state.get("backup") and not is_complete_archive(last):
            print(f"warning: {last} missing or incomplete; written again from the backup of step "
                  f"{self.state['steps_done']}")
            save_model(self.model, last)

    # Committing ------------------------------------------------------------------------------------

    def _history(self, epoch: int, logs: dict) -> None:
        path = self.folder.history
        row = pd.DataFrame([{"epoch": epoch, **{key: float(value) for key, value in logs.items()}}])
        if path.exists() and path.stat().st_size:
            try:
                earlier = pd.read_csv(path)
                earlier = earlier[earlier["epoch"] < epoch] if "epoch" in earlier else earlier.iloc[0:0]
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
                earlier = pd.DataFrame()
            row = pd.concat([earlier, row], ignore_index=True)
        write_text_atomically(path, row.to_csv(index=False))

    def on_epoch_end(self, epoch, logs=None):
        self.commit(epoch + 1, dict(logs or {}))

    def commit(self, epochs_done: int, logs: dict) -> None:
        """Writes the checkpoints of ``epochs_done`` completed epochs, the state file last."""
        if not self.write:
            return
        steps = int(self.model.optimizer.iterations.numpy())
        backup = f"epoch-{epochs_done:06d}.weights.h5"
        replace_atomically(self.model.save_weights, self.folder.backup / backup)
        save_model(self.model, self.folder.last_checkpoint)
        value = logs.get(self.monitor) if self.monitor else None
        if value is not None and not math.isnan(float(value)) and is_better(float(value), self.best, self.mode):
            save_model(self.model, self.folder.best_checkpoint)
            self.best, self.best_epoch = float(value), epochs_done - 1
        self._history(epochs_done - 1, logs)
        previous = ({"epoch": self.state["epoch"], "steps_done": self.state["steps_done"],
                     "backup": self.state["backup"], "best": self.state.get("best")}
                    if self.state.get("backup") else None)
        self.state = {
            "steps_done": steps, "max_steps": self.max_steps, "steps_per_epoch": self.steps_per_epoch,
            "epoch": epochs_done, "backup": backup, "previous": previous,
            "best": {"monitor": self.monitor, "mode": self.mode, "value": self.best, "epoch": self.best_epoch},
            "last_logs": {key: float(value) for key, value in logs.items()},
        }
        write_text_atomically(self.folder.training_state, json.dumps(self.state, indent=2))
        keep = {backup, previous["backup"] if previous else None}
        for path in (self.folder.backup).iterdir():
            if path.name not in keep and (path.name.startswith(("epoch-", "latest.weights.h5"))
                                          or path.name.startswith("training_metadata.json")):
                path.unlink(missing_ok=True)


def save_model(model: keras.Model, path: str | Path) -> None:
    """Writes ``model`` to a ``.keras`` file atomically, without its optimizer's state.

    The moments of Adam are twice the weights again, and only resuming needs them: the resume backup
    holds them. Without them a ResNet-3D checkpoint took 364 kB instead of 986 kB; a tiny MRNet run
    wrote 380-398 MB per ``.keras`` file. The compile configuration stays, so a load with
    ``compile=True`` gets a fresh optimizer (Keras then notes it skipped the absent optimizer state).
    """
    optimizer = model.optimizer
    model.optimizer = None
    try:
        replace_atomically(model.save, path)
    finally:
        model.optimizer = optimizer


class BestCheckpoint(keras.callbacks.Callback):
    """Keras' ``ModelCheckpoint(save_best_only=True)`` for runs outside :func:`dltk2.training.train`, written atomically.

    Args:
        path: The ``.keras`` file.
        monitor, mode: The metric and whether higher (``"max"``) or lower (``"min"``) is better.
    """

    def __init__(self, path: str | Path, monitor: str, mode: str = "min") -> None:
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not math.isnan(float(value)) and is_better(float(value), self.best, self.mode):
            self.best = float(value)
            save_model(self.model, self.path)


def load_checkpoint(path: str | Path, fallbacks: Sequence[str | Path] = ()) -> keras.Model:
    """Loads a ``.keras`` checkpoint, or the first of ``fallbacks`` that is complete, saying why.

    Raises:
        FileNotFoundError: None of them exists.
        DataError: Those that exist are all damaged.
    """
    tried = []
    for candidate in [Path(path), *map(Path, fallbacks)]:
        if not candidate.exists():
            continue
        if is_complete_archive(candidate):
            if tried:
                print(f"warning: {tried[0]} is damaged (not a complete archive); using {candidate}")
            return keras.models.load_model(candidate, compile=False)
        tried.append(candidate)
    if tried:
        raise DataError(f"{tried[0]}: damaged checkpoint (not a complete archive), and no intact one to use instead")
    names = " or ".join(str(candidate) for candidate in [Path(path), *map(Path, fallbacks)])
    raise FileNotFoundError(f"{names}: no trained model; train one first")


def final_weights_into(model: keras.Model, model_path: str | Path) -> None:
    """Sets ``model``'s weights to those a finished run of ``model_path`` ended with.

    From ``checkpoints/last.keras`` when it is complete, from the committed backup otherwise.
    """
    model_path = Path(model_path)
    last = ModelFolder(model_path).last_checkpoint
    if is_complete_archive(last):
        model.set_weights(keras.models.load_model(last, compile=False).get_weights())
        return
    commit = EpochCommit(model_path, 0, 1, write=False)
    commit.set_model(model)
    commit.restore()


def prune_finished(model_path: str | Path) -> int:
    """Deletes the resume backups of a finished run whose ``last.keras`` is complete; returns bytes freed.

    A finished stage of a staged run (a frozen-head part, an earlier input size) is never resumed
    again: the next stage starts from its ``last.keras``. Its backups, with the optimizer's moments
    (two per folder, each three times the weights), only took disk: a tiny MRNet run of 3 stages
    wrote 3.4 GB. Nothing is deleted unless the state says every step is done.
    """
    folder = ModelFolder(model_path)
    state = read_state(folder.path) or {}
    if not state.get("max_steps") or state.get("steps_done", 0) < state["max_steps"]:
        return 0
    if not is_complete_archive(folder.last_checkpoint) or not folder.backup.is_dir():
        return 0
    freed = 0
    for path in folder.backup.iterdir():
        if path.is_file():
            freed += path.stat().st_size
            path.unlink()
    return freed


def clear_model_folder(model_path: Path, keep: Sequence[str] = (LOCK_NAME,)) -> None:
    """Deletes everything in a model folder but ``keep`` (its lock, which the caller holds)."""
    for path in model_path.iterdir():
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
