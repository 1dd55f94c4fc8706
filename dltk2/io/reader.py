"""From rows of a CSV to a ``tf.data.Dataset``, through a Python ``read_fn`` run by ``tf.py_function``.

A ``read_fn(file_reference, mode, params)`` receives one row (a list of strings), reads the files it
names (with SimpleITK, say), and yields one or more examples, each a nested dict such as
``{"features": {"x": array}, "labels": {"y": array}}``. :class:`Reader` runs it in parallel inside
tf.data, stacks the examples of one row, and shuffles, repeats, batches and prefetches by mode:

* ``TRAIN``: rows shuffled every pass, repeated, examples shuffled across rows, batched.
* ``EVAL``: one pass, in order, with labels.
* ``PREDICT``: one pass, in order, features only.
"""

from __future__ import annotations

import enum
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from dltk2.errors import DataError, first_line
from dltk2.io.pipeline import py_function, with_pipeline_options

logger = logging.getLogger(__name__)


class Mode(str, enum.Enum):
    """What a dataset is for; decides shuffling, repetition and whether labels are read."""

    TRAIN = "train"
    EVAL = "eval"
    PREDICT = "predict"


class ReaderError(DataError, RuntimeError):
    """A ``read_fn`` failed on a row, or returned examples of the wrong structure or shape."""


class CsvError(DataError):
    """A CSV (or JSON metadata) table is missing, empty, malformed, or lacks a column that is needed."""


ReadFn = Callable[[Sequence[str], Mode, Mapping[str, Any]], Iterable[Mapping[str, Any]]]


def resolve_csv_path(value: str, csv_dir: Path) -> str:
    """A file named in a CSV: absolute as is, relative from the CSV's folder.

    A relative path that names no file there but one from the working directory is taken from there:
    CSVs written before their paths were relative to the CSV held such paths.
    """
    if not value or Path(value).is_absolute():
        return value
    beside = csv_dir / value
    if not beside.exists() and Path(value).exists():
        return value
    return str(beside)


def read_csv_columns(
    csv_path: str | Path, columns: Sequence[str], dtype: Any = str, path_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Reads a CSV and checks that it has ``columns``.

    Args:
        csv_path: The CSV file.
        columns: Names that must be present (others are kept too).
        dtype: Passed to pandas; strings by default so that IDs such as ``IXI002`` stay intact.
        path_columns: Columns of file paths, relative ones taken from the CSV's folder
            (:func:`resolve_csv_path`), so a CSV and its files can be used from any working directory.

    Raises:
        CsvError: A one-line message naming the file and what is wrong with it.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise CsvError(f"{csv_path}: no such CSV file")
    try:
        table = pd.read_csv(csv_path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CsvError(f"{csv_path}: cannot parse CSV: {str(error).strip().splitlines()[0]}") from error
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise CsvError(
            f"{csv_path}: lacks column(s) {', '.join(repr(m) for m in missing)} "
            f"(has {', '.join(repr(c) for c in table.columns)})"
        )
    if table.empty:
        raise CsvError(f"{csv_path}: has a header but no rows")
    for column in path_columns:
        if column in table.columns:
            table[column] = [resolve_csv_path("" if pd.isna(value) else str(value), csv_path.parent)
                             for value in table[column]]
    return table


_TENSOR_ALIGNMENT = 64  # bytes; TensorFlow takes a numpy array without copying only when so aligned


def _stack_aligned(arrays: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """``np.stack(arrays).astype(dtype)`` into a buffer that TensorFlow can adopt without a copy.

    ``tf.py_function`` turns a returned array into a tensor in place if its data is 64-byte aligned,
    and copies it otherwise; numpy's arrays from the heap are only 16-byte aligned.
    """
    dtype = np.dtype(dtype)
    shape = (len(arrays),) + np.shape(arrays[0])
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < 1 << 16:
        return np.stack(arrays).astype(dtype, copy=False)
    buffer = np.empty(nbytes + _TENSOR_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % _TENSOR_ALIGNMENT
    out = buffer[start : start + nbytes].view(dtype).reshape(shape)
    try:
        np.stack(arrays, out=out, casting="unsafe")  # astype's casting
    except ValueError:  # shapes differ: let np.stack say so as it always did
        return np.stack(arrays).astype(dtype, copy=False)
    return out


def _as_rows(file_references: Any) -> list[list[str]]:
    if isinstance(file_references, pd.DataFrame):
        return file_references.astype(str).values.tolist()
    rows = [[str(value) for value in (row if isinstance(row, (list, tuple, np.ndarray)) else [row])]
            for row in file_references]
    return rows


class Reader:
    """Turns rows of file references into a ``tf.data.Dataset`` through a Python ``read_fn``.

    Args:
        read_fn: ``read_fn(file_reference: list[str], mode: Mode, params: dict)`` yielding examples
            as nested dicts with the structure of ``dtypes``.
        dtypes: Nested dict of ``tf.DType``, e.g. ``{"features": {"x": tf.float32},
            "labels": {"y": tf.int32}}``. ``labels`` is left out in PREDICT mode.
        shapes: Same structure, the shape of one example (no batch axis); ``None`` entries or dims are
            unknown. Known shapes let Keras build the model without a first batch.

    Attributes:
        skipped: ``(file_reference, message)`` for each row skipped with ``skip_errors=True``.
    """

    def __init__(
        self,
        read_fn: ReadFn,
        dtypes: Mapping[str, Mapping[str, tf.DType]],
        shapes: Mapping[str, Mapping[str, Sequence[int | None] | None]] | None = None,
    ) -> None:
        if "features" not in dtypes:
            raise ValueError("dtypes needs a 'features' entry")
        self.read_fn = read_fn
        self.dtypes = {key: dict(value) for key, value in dtypes.items()}
        self.shapes = {
            key: {name: (shapes or {}).get(key, {}).get(name) for name in self.dtypes[key]}
            for key in self.dtypes
        }
        self.skipped: list[tuple[list[str], str]] = []
        self._lock = threading.Lock()

    def _structure(self, mode: Mode) -> dict[str, dict[str, tf.DType]]:
        if mode == Mode.PREDICT:
            return {"features": self.dtypes["features"]}
        if "labels" not in self.dtypes:
            raise ValueError(f"{mode.value} mode needs 'labels' in dtypes")
        return {"features": self.dtypes["features"], "labels": self.dtypes["labels"]}

    def _stack_examples(
        self, row: list[str], examples: list[Mapping[str, Any]], structure: dict, flat_dtypes: list
    ) -> list[np.ndarray]:
        flat_shapes = [self.shapes[key][name] for key in sorted(structure) for name in sorted(structure[key])]
        columns: list[list[np.ndarray]] = [[] for _ in flat_dtypes]
        for example in examples:
            for key in sorted(structure):
                if key not in example:
                    raise ReaderError(f"{row}: read_fn gave no {key!r} (gave {sorted(example)})")
                for name in sorted(structure[key]):
                    if name not in example[key]:
                        raise ReaderError(f"{row}: read_fn gave no {key}/{name} (gave {sorted(example[key])})")
            flat = [np.asarray(example[key][name]) for key in sorted(structure) for name in sorted(structure[key])]
            for index, (value, shape) in enumerate(zip(flat, flat_shapes)):
                if shape is not None and not tf.TensorShape(shape).is_compatible_with(value.shape):
                    raise ReaderError(f"{row}: example shape {value.shape} does not match {tuple(shape)}")
                columns[index].append(value)
        stacked = []
        for values, dtype, shape in zip(columns, flat_dtypes, flat_shapes):
            if values:
                stacked.append(_stack_aligned(values, dtype.as_numpy_dtype))
            else:
                empty_shape = [0] + [d or 0 for d in (shape or [])]
                stacked.append(np.zeros(empty_shape, dtype=dtype.as_numpy_dtype))
        return stacked

    def dataset(
        self,
        file_references: pd.DataFrame | Sequence[Sequence[str]],
        mode: Mode,
        params: Mapping[str, Any] | None = None,
        batch_size: int = 1,
        shuffle_buffer_size: int = 64,
        seed: int | None = None,
        num_parallel_calls: int = tf.data.AUTOTUNE,
        skip_errors: bool = False,
        drop_remainder: bool | None = None,
        unpack_single: bool = True,
    ) -> tf.data.Dataset:
        """Builds the dataset.

        Args:
            file_references: A DataFrame or a list of rows; every value is passed as a string.
            mode: TRAIN, EVAL or PREDICT.
            params: Passed to ``read_fn`` unchanged (example size, number of examples...).
            batch_size: Examples per batch (per replica times replicas under a strategy).
            shuffle_buffer_size: Examples held for shuffling across rows in TRAIN mode.
            seed: Seed for the shuffles (the read_fn's own randomness is its affair).
            num_parallel_calls: Rows read at once.
            skip_errors: Skip rows whose read_fn raises, recording them in :attr:`skipped`, instead
                of failing. Off by default: a bad file stops the run with its name in the error.
            drop_remainder: Drop a last short batch; default True in TRAIN, False otherwise.
            unpack_single: Give a bare tensor instead of a one-entry dict for features and labels.

        Returns:
            Elements ``(features, labels)`` in TRAIN and EVAL, ``features`` in PREDICT.
        """
        mode = Mode(mode)
        params = dict(params or {})
        rows = _as_rows(file_references)
        if not rows:
            raise ValueError("no file references to read")
        structure = self._structure(mode)
        keys = [(key, name) for key in sorted(structure) for name in sorted(structure[key])]
        flat_dtypes = [tf.as_dtype(structure[key][name]) for key, name in keys]

        def read_row(reference: tf.Tensor) -> list[np.ndarray]:
            row = [value.decode("utf-8") for value in reference.numpy()]
            try:
                examples = list(self.read_fn(row, mode, params))
                if not examples:
                    raise ReaderError(f"{row}: read_fn gave no examples")
                return self._stack_examples(row, examples, structure, flat_dtypes)
            except Exception as error:  # reported with the row, or recorded and skipped
                message = first_line(error)
                if not skip_errors:
                    raise ReaderError(f"reading {row}: {message}") from error
                with self._lock:
                    self.skipped.append((row, message))
                logger.warning("skipping %s: %s", row, message)
                return self._stack_examples(row, [], structure, flat_dtypes)

        def py_read(reference: tf.Tensor):
            outputs = py_function(read_row, [reference], flat_dtypes)
            nested: dict[str, dict[str, tf.Tensor]] = {}
            for (key, name), tensor in zip(keys, outputs):
                shape = self.shapes[key][name]
                tensor.set_shape(tf.TensorShape([None]).concatenate(
                    tf.TensorShape(shape) if shape is not None else tf.TensorShape(None)))
                nested.setdefault(key, {})[name] = tensor
            return nested

        references = tf.data.Dataset.from_tensor_slices(tf.constant(rows, dtype=tf.string))
        if mode == Mode.TRAIN:
            references = references.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True).repeat()
        dataset = references.map(
            py_read, num_parallel_calls=num_parallel_calls, deterministic=mode != Mode.TRAIN
        ).unbatch()
        if mode == Mode.TRAIN and shuffle_buffer_size > 1:
            dataset = dataset.shuffle(shuffle_buffer_size, seed=seed)

        def to_elements(nested):
            def unpack(values):
                return next(iter(values.values())) if unpack_single and len(values) == 1 else values

            if mode == Mode.PREDICT:
                return unpack(nested["features"])
            return unpack(nested["features"]), unpack(nested["labels"])

        dataset = dataset.map(to_elements)
        if drop_remainder is None:
            drop_remainder = mode == Mode.TRAIN
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
        # Rows come from memory, not files: under MultiWorkerMirroredStrategy shard by element.
        return with_pipeline_options(dataset, tf.data.experimental.AutoShardPolicy.DATA)
