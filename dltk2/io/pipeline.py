"""The ``tf.data`` options every dltk2 input pipeline ends with, and its exit-safe ``py_function``.

Options
-------
TensorFlow's autotuning model runs in a thread that wakes at doubling intervals (10 ms, 20 ms, ...
up to a minute) to re-tune parallelism and buffer sizes. Destroying an iterator joins that thread,
and the join waits for its next wake-up, not for a cancellation: ``fit``, ``evaluate``, ``predict``
and every Python loop over a dataset can return up to one interval after their last element.
Measured on 2 cores: ``fit`` calls of three IXI ResNet steps on a :class:`~dltk2.io.reader.Reader`
dataset returned 1.3-1.6 s after their last step in 4 of 6 calls (each then took 5.12 s, the
thread's wake-up time, instead of 3.3-3.7 s), and an iterator that had lived 12 s took 8.7 s to
destroy. With the model off: 0.00 s after the last step in 6 of 6 calls.

What the model would have tuned is set without it: ``map(..., num_parallel_calls=AUTOTUNE)`` runs as
many calls as the inter-op thread pool has threads (one per core, the model's own ceiling), and
``prefetch(AUTOTUNE)`` keeps its own buffer autotuner, which grows the buffer whenever the consumer
finds it empty and does not depend on the model.

Exit
----
A pipeline keeps reading after its consumer stops, to fill its buffers. When the interpreter then
ends, its finalization stops every thread that asks for the GIL, TensorFlow's threads inside a
``tf.py_function`` among them; unwinding such a thread through TensorFlow's C++ aborts the process
("FATAL: exception not rethrown") or leaves a call that the iterator's destructor waits for forever.
A script that ended with a live TRAIN :class:`~dltk2.io.reader.Reader` iterator aborted or hung in 6
of 11 runs, and one that ended on an uncaught read error aborted unless it left through ``os._exit``
(which skips every ``atexit`` handler, the user's too). :func:`py_function`, which dltk2's pipelines
use for every Python step, counts the calls in flight; :func:`drain_python_calls`, registered with
``atexit`` so that it runs before finalization, makes later calls fail at once and waits until none
has run for a quarter of a second. The buffers fill with errors nobody reads, and finalization finds
no call to stop. The cost is that quarter second at exit, only after recent reading.

Errors
------
An exception raised by a Python step reaches the consumer as a ``tf.errors.OpError`` whose message
holds the exception's text and traceback. :func:`py_function` remembers the last user errors
(:data:`dltk2.errors.USER_ERRORS`: a bad file, a wrong column) that its calls raised, so that
:func:`user_error_in` can give back the original exception for the ``OpError`` that carried it, and
the command line report it in one line whatever its type.
"""

from __future__ import annotations

import atexit
import collections
import functools
import sys
import threading
import time
from typing import Any, Callable

import tensorflow as tf

from dltk2.errors import USER_ERRORS, first_line


def pipeline_options(
    auto_shard_policy: tf.data.experimental.AutoShardPolicy | None = None,
) -> tf.data.Options:
    """Options with tf.data's autotuning model off and, if given, the auto-shard policy set.

    Args:
        auto_shard_policy: How ``MultiWorkerMirroredStrategy`` splits the pipeline between workers:
            ``DATA`` for pipelines whose rows come from memory rather than from files; None leaves
            TensorFlow's default (``AUTO``: by file where it can).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    if auto_shard_policy is not None:
        options.experimental_distribute.auto_shard_policy = auto_shard_policy
    return options


def with_pipeline_options(
    dataset: tf.data.Dataset,
    auto_shard_policy: tf.data.experimental.AutoShardPolicy | None = None,
) -> tf.data.Dataset:
    """``dataset`` with :func:`pipeline_options`; options set on it later take precedence."""
    return dataset.with_options(pipeline_options(auto_shard_policy))


class PipelineClosed(RuntimeError):
    """A pipeline's Python function was called while the interpreter is exiting."""


class _PythonCalls:
    """The Python functions that tf.data threads are running, so that exit can wait for them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.last_end = float("-inf")  # time.monotonic() when the last call returned
        self.closed = False

    def enter(self) -> None:
        with self.lock:
            if self.closed:
                raise PipelineClosed("the interpreter is exiting; the pipeline no longer reads")
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            self.last_end = time.monotonic()


_calls = _PythonCalls()
_user_errors: collections.deque[BaseException] = collections.deque(maxlen=64)  # appends are thread-safe


def user_error_in(error: BaseException) -> BaseException | None:
    """The user error raised in a pipeline's Python step that ``error`` (an ``OpError``) carries, if any."""
    message = getattr(error, "message", None) or str(error)
    for candidate in reversed(list(_user_errors)):
        if first_line(candidate) in message:
            return candidate
    return None


def py_function(func: Callable[..., Any], inp: list[Any], Tout: Any, name: str | None = None) -> Any:
    """``tf.py_function(func, inp, Tout)`` whose calls the interpreter's exit waits for.

    Use it for every Python function inside a tf.data pipeline (see the module docstring).
    """

    @functools.wraps(func)
    def tracked(*args: Any) -> Any:
        _calls.enter()
        try:
            return func(*args)
        except USER_ERRORS as error:
            _user_errors.append(error)
            raise
        finally:
            _calls.leave()

    return tf.py_function(tracked, inp, Tout, name=name)


def drain_python_calls(quiet_s: float = 0.25, timeout_s: float = 120.0) -> bool:
    """Stops pipelines' Python calls and waits until none has run for ``quiet_s`` seconds.

    Runs at exit (registered with ``atexit``). Calls made after it fail at once with
    :class:`PipelineClosed`. Returns at once when no call has run in the last ``quiet_s``.

    Args:
        quiet_s: Seconds without a call in flight that count as quiescent: long enough for the
            pipelines' buffers to fill with the failing calls' errors.
        timeout_s: Give up after this long (a read stuck in I/O), with a line on stderr.

    Returns:
        True if the pipelines went quiet, False on the timeout.
    """
    with _calls.lock:
        _calls.closed = True
    deadline = time.monotonic() + timeout_s
    while True:
        with _calls.lock:
            active, last_end = _calls.active, _calls.last_end
        now = time.monotonic()
        if active == 0 and now - last_end >= quiet_s:
            return True
        if now >= deadline:
            sys.stderr.write(f"dltk2: {active} input pipeline read(s) still running after {timeout_s:g} s "
                             "at exit\n")
            return False
        time.sleep(0.01)


atexit.register(drain_python_calls)
