"""Progress that reads well in a terminal and in a log file: plain lines, at most one per interval.

Keras prints either a progress bar (carriage returns: one unreadable line in a log file) or, with
``verbose=2``, one line per epoch, and so nothing at all for the first epoch of a run: 113 s for
Synapse, 132 s for the chest classifier and about 55 s per MRNet stage on 2 CPU cores, which looks
like a hang. :class:`TrainingProgress` prints the first step (which includes tracing), then a line
every ``interval_s`` seconds with the step, the running metrics, the speed and the time left, and one
line per epoch with the validation metrics. :func:`progress_lines` does the same for any loop (deploy's
cases, a sliding window's batches).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Mapping, TypeVar

import keras

T = TypeVar("T")

INTERVAL_S = 30.0
"""Seconds between two progress lines (the first step and each epoch's end are always shown)."""


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``1 h 05 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def format_logs(logs: Mapping[str, float] | None) -> str:
    """``loss=0.6931, accuracy=0.5000`` (4 significant decimals), in the order Keras gives them."""
    return ", ".join(f"{key}={float(value):.4g}" for key, value in (logs or {}).items())


def _print(line: str) -> None:
    print(line, flush=True)


class TrainingProgress(keras.callbacks.Callback):
    """Lines of progress for :func:`dltk2.training.train` (which runs Keras with ``verbose=0`` then).

    Args:
        max_steps: The run's total optimizer steps.
        steps_per_epoch: Steps per epoch (checkpoint interval).
        interval_s: Seconds between lines within an epoch.
        best_epoch: Returns the epoch (0-based) of the best checkpoint so far, to mark it; optional.
        write: Where lines go (``print`` by default).
    """

    def __init__(self, max_steps: int, steps_per_epoch: int, interval_s: float = INTERVAL_S,
                 best_epoch: Callable[[], int | None] | None = None, write: Callable[[str], None] = _print) -> None:
        super().__init__()
        self.max_steps, self.steps_per_epoch, self.interval_s = max_steps, steps_per_epoch, interval_s
        self.best_epoch, self.write = best_epoch, write
        self.epochs = -(-max_steps // steps_per_epoch)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        self._started = self._last = time.perf_counter()
        self._first_step = self._step()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        first = batch == 0 and self._last == self._started
        if not first and now - self._last < self.interval_s:
            return
        self._last = now
        step = self._step()
        done = step - self._first_step
        line = f"step {step}/{self.max_steps} (epoch {self._epoch + 1}/{self.epochs}): {format_logs(logs)}"
        if first:
            line += f"; first step after {duration(now - self._started)} (tracing included)"
        elif done > 1:
            rate = (done - 1) / max(now - self._first_step_time, 1e-9)
            line += f"; {rate:.2f} steps/s, about {duration((self.max_steps - step) / max(rate, 1e-9))} left"
        if first:
            self._first_step_time = now
        self.write(line)

    def on_epoch_end(self, epoch, logs=None):
        best = self.best_epoch() if self.best_epoch is not None else None
        marker = "; best so far" if best == epoch and any(key.startswith("val_") for key in logs or {}) else ""
        self.write(f"epoch {epoch + 1}/{self.epochs} (step {self._step()}/{self.max_steps}, "
                   f"{duration(time.perf_counter() - self._epoch_started)}): {format_logs(logs)}{marker}")


def progress_lines(items: Iterable[T], total: int | None, what: str, interval_s: float = INTERVAL_S,
                   write: Callable[[str], None] = _print) -> Iterator[T]:
    """Yields ``items``, writing ``what 3/12 (25 %), about 4 min left`` at most every ``interval_s`` seconds.

    The first item's line comes as it starts; a finished loop writes nothing more (its caller says
    what it did).
    """
    started = last = time.perf_counter()
    for number, item in enumerate(items):
        now = time.perf_counter()
        if number and now - last >= interval_s:
            last = now
            left = ""
            if total:
                left = f" ({100 * number / total:.0f} %), about {duration((now - started) / number * (total - number))} left"
            write(f"{what} {number}/{total if total else '?'} done{left}")
        yield item
