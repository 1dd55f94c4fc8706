"""Knee MRI exams in Stanford MRNet's layout: reading, validation split, oversampling, tf.data input.

Layout (MRNet-v1.0, and what ``data_scripts/make_synthetic_mrnet.py`` writes)::

    DIR/train/sagittal/0000.npy      uint8 (slices, 256, 256), one series per exam and plane
    DIR/train/coronal/0000.npy, DIR/train/axial/0000.npy
    DIR/valid/<plane>/1130.npy
    DIR/train-abnormal.csv           "id,label" rows (MRNet's own files have no header: 0000,0)
    DIR/valid-abnormal.csv           and -acl.csv, -meniscus.csv for the other tasks

or any CSV with ``path`` (absolute or relative to the CSV's folder) and ``label`` columns, and
optionally ``id``.

MRNet's ``valid`` split is the held-out set (its test set is not public), so model selection needs a
validation set of its own, drawn from ``train``: :func:`split_exams` draws it by exam, stratified, and
only then :func:`oversample_minority` repeats minority-class exams of the training part. No copy of an
exam can reach the validation set, which is the leak of drawing a validation split after duplicating.

A series becomes the network's input by :func:`series_input`, in TensorFlow ops, so the exported
serving function takes the raw series: linear resampling to (depth, size, size) (in-plane with
antialiasing, then across slices) and whitening per series.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from dltk2.model_folder import ModelFolder
from dltk2.errors import first_line
from dltk2.inference import series_input
from dltk2.io.paths import check_name, path_inside
from dltk2.io.pipeline import py_function, with_pipeline_options
from dltk2.io.reader import CsvError, ReaderError, read_csv_columns

PLANES = ("sagittal", "coronal", "axial")
TASKS = ("abnormal", "acl", "meniscus")
CLASSES = ("normal", "abnormal")


def _read_id_label_csv(csv_path: Path) -> pd.DataFrame:
    """MRNet's ``id,label`` CSV, with or without a header row; ids zero-padded to 4 digits."""
    if not csv_path.is_file():
        raise CsvError(f"{csv_path}: no such CSV file")
    try:
        table = pd.read_csv(csv_path, header=None, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise CsvError(f"{csv_path}: cannot parse CSV: {str(error).strip().splitlines()[0]}") from None
    if table.shape[1] < 2:
        raise CsvError(f"{csv_path}: needs two columns, id and label (has {table.shape[1]})")
    table = table.iloc[:, :2].set_axis(["id", "label"], axis=1)
    if str(table.iloc[0, 0]).strip().lower() == "id":
        table = table.iloc[1:]
    if table.empty:
        raise CsvError(f"{csv_path}: has no exams")
    labels = pd.to_numeric(table["label"], errors="coerce")
    bad = table[labels.isna() | ~labels.isin([0, 1])]
    if len(bad):
        raise CsvError(f"{csv_path}: label must be 0 or 1; exam {bad.iloc[0]['id']} has {bad.iloc[0]['label']!r}")
    ids = table["id"].fillna("").str.strip()
    ids = ids.where(~ids.str.isdigit(), ids.str.zfill(4))
    for exam in ids:
        check_name(exam, str(csv_path), "exam id")
    return pd.DataFrame({"id": ids.values, "label": labels.astype(int).values})


def load_exams(data_dir: str | Path, split: str = "train", task: str = "abnormal",
               plane: str = "sagittal") -> pd.DataFrame:
    """The exams of one MRNet split for one task and plane.

    Args:
        data_dir: The MRNet folder (holding ``train/``, ``valid/`` and the CSVs).
        split: ``train`` or ``valid``.
        task: ``abnormal``, ``acl`` or ``meniscus``.
        plane: ``sagittal``, ``coronal`` or ``axial``.

    Returns:
        DataFrame ``id`` (str), ``path`` (str), ``label`` (int 0/1), in the CSV's order.

    Raises:
        CsvError: Missing or malformed CSV, a label other than 0/1.
        FileNotFoundError: A listed exam has no series for the plane (the first missing file named).
        DataError: An exam id that is not a plain name (``../outside/9999``).
        ReaderError: A series whose header is garbled or does not match its file (:func:`check_series`).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    data_dir = Path(data_dir)
    table = _read_id_label_csv(data_dir / f"{split}-{task}.csv")
    source = str(data_dir / f"{split}-{task}.csv")
    table["path"] = [str(path_inside(data_dir / split / plane, f"{exam}.npy", source=source)) for exam in table["id"]]
    missing = [path for path in table["path"] if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such series ({len(missing)} of {len(table)} exams lack one)")
    check_series(table)
    return table[["id", "path", "label"]]


def load_exam_list(csv_path: str | Path) -> pd.DataFrame:
    """A CSV of series files and labels: columns ``path`` and ``label`` (0/1), optionally ``id``.

    Relative paths are taken from the CSV's folder and may not leave it (``../x.npy`` is refused; give
    such a file by its absolute path); without ``id`` the file name (no suffix) is the id.
    """
    csv_path = Path(csv_path)
    table = read_csv_columns(csv_path, ["path", "label"])
    labels = pd.to_numeric(table["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise CsvError(f"{csv_path}: column 'label' must hold 0 or 1")
    if table["path"].isna().any():
        raise CsvError(f"{csv_path}: row {int(table['path'].isna().to_numpy().argmax()) + 2} has no path")
    paths = [str(p if Path(p).is_absolute() else path_inside(csv_path.parent, p, source=str(csv_path)))
             for p in table["path"]]
    ids = table["id"].fillna("").tolist() if "id" in table else [Path(p).stem for p in paths]
    for exam in ids:
        check_name(exam, str(csv_path), "exam id")
    exams = pd.DataFrame({"id": list(ids), "path": paths, "label": labels.astype(int).values})
    check_series(exams)
    return exams


def split_exams(exams: pd.DataFrame, validation_fraction: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits exams into training and validation, stratified by label, each exam on one side.

    Rows sharing an ``id`` (several series of one exam, or copies) stay together.

    Returns:
        ``(train, validation)``, each in the input's order.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    exam_labels = exams.groupby("id", sort=False)["label"].max()
    validation_ids: list[str] = []
    for label in sorted(exam_labels.unique()):
        ids = exam_labels.index[exam_labels == label].to_numpy()
        count = int(round(validation_fraction * len(ids)))
        if len(ids) > 1:
            count = min(max(count, 1), len(ids) - 1)
        validation_ids.extend(rng.permutation(ids)[:count])
    in_validation = exams["id"].isin(validation_ids)
    return exams[~in_validation].reset_index(drop=True), exams[in_validation].reset_index(drop=True)


def oversample_minority(exams: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Repeats exams of the smaller classes until every class has as many rows as the largest.

    Every exam of a class appears ``k`` or ``k + 1`` times (whole copies first, then a random
    remainder without repeats), so no exam is favoured beyond one extra copy. Call it on the training
    split only. The result is shuffled.

    Returns:
        The rows with a ``copy`` column (0 for the original row, 1, 2... for repeats).
    """
    rng = np.random.default_rng(seed)
    counts = exams["label"].value_counts()
    largest = int(counts.max())
    parts = []
    for label, count in counts.items():
        rows = exams[exams["label"] == label]
        whole, remainder = divmod(largest, int(count))
        for copy in range(whole):
            parts.append(rows.assign(copy=copy))
        if remainder:
            parts.append(rows.iloc[np.sort(rng.choice(len(rows), remainder, replace=False))].assign(copy=whole))
    result = pd.concat(parts, ignore_index=True)
    return result.iloc[rng.permutation(len(result))].reset_index(drop=True)


def series_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and type an ``.npy`` series declares, checked against the file before anything is read.

    A header is only a promise: one that claims 10^11 voxels made ``np.load`` try to allocate 52 TiB,
    and a garbled one failed deep inside NumPy. This reads the header alone (a few hundred bytes) and
    checks that it describes a 3D array of real numbers that the file's size holds exactly.

    Raises:
        ReaderError: ``reading [path]: <problem>`` for a missing or unreadable file, a garbled or
            unsupported header, a series that is not (slices, height, width), values that are not
            numbers, or a size that does not match the header.
    """
    try:
        with open(path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version in ((2, 0), (3, 0)):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            data_start = stream.tell()
        size = Path(path).stat().st_size
    except FileNotFoundError:
        raise ReaderError(f"reading [{path}]: no such file") from None
    except Exception as error:  # NumPy's header parser raises ValueError, SyntaxError, TokenError...
        raise ReaderError(f"reading [{path}]: not a readable .npy series ({type(error).__name__}: "
                          f"{first_line(error)})") from None
    if len(shape) != 3 or min(shape, default=0) < 1:
        raise ReaderError(f"reading [{path}]: expected (slices, height, width), got shape {tuple(shape)}")
    if dtype.hasobject or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ReaderError(f"reading [{path}]: values of type {dtype} are not numbers")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size - data_start != expected:
        raise ReaderError(f"reading [{path}]: header promises {tuple(shape)} {dtype} ({expected} bytes) but the "
                          f"file holds {size - data_start} bytes of data (truncated or garbled)")
    return tuple(int(d) for d in shape), dtype


def check_series(exams: pd.DataFrame) -> None:
    """Checks every row's series header (:func:`series_header`) before anything is built or trained.

    Reading a header cost 112 microseconds a file (200 MRNet-sized series, 2 cores); a bad file
    then stops the run at once, in one line, instead of minutes later inside the input pipeline.
    """
    for path in exams["path"]:
        series_header(path)


def read_series(path: str | Path) -> np.ndarray:
    """Loads one series: (slices, height, width), any real number type (MRNet: uint8).

    Raises:
        ReaderError: ``reading [path]: <problem>`` for a missing, truncated or non-npy file, a header
            that does not match the file (:func:`series_header`), a series that is not 3D or is
            empty, or non-finite values.
    """
    series_header(path)
    try:
        series = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ReaderError(f"reading [{path}]: no such file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ReaderError(f"reading [{path}]: not a readable .npy series ({first_line(error)})") from None
    if np.issubdtype(series.dtype, np.floating) and not np.isfinite(series).all():
        raise ReaderError(f"reading [{path}]: {int((~np.isfinite(series)).sum())} NaN or infinite values")
    return series


def _load_series(path: tf.Tensor) -> tf.Tensor:
    def load(path_bytes):
        return read_series(path_bytes.numpy().decode("utf-8")).astype(np.float32, copy=False)

    series = py_function(load, [path], tf.float32)
    series.set_shape([None, None, None])
    return series


def series_dataset(
    exams: pd.DataFrame,
    depth: int,
    size: int,
    batch_size: int,
    training: bool = False,
    seed: int = 0,
    augment: Callable[[tf.Tensor], tf.Tensor] | None = None,
    cache: bool = False,
    with_ids: bool = False,
) -> tf.data.Dataset:
    """Batches of (series input, label) for rows of ``id, path, label``.

    Series are read with numpy inside ``tf.py_function`` (in parallel), then :func:`series_input`.

    Args:
        exams: The rows to read (oversampled ones for training).
        depth, size: Network input (depth, size, size, 1).
        batch_size: Series per batch (global batch under a strategy).
        training: Shuffled every pass, repeated, full batches only; otherwise one pass in order.
        seed: Shuffle seed.
        augment: Applied to each training batch (b, depth, size, size, 1), e.g.
            :func:`dltk2.batch_augmentation.augment_volume_batch`.
        cache: Keep the resampled series in memory after the first pass (depth x size x size x 4
            bytes each); training then shuffles through a buffer of 256 series instead of the whole
            list of files.
        with_ids: Add the exam id as a third element (evaluation).
    """
    if exams.empty:
        raise ValueError("no exams to read")
    paths = tf.constant(exams["path"].astype(str).tolist())
    labels = tf.constant(exams["label"].astype(np.int32).to_numpy())
    ids = tf.constant(exams["id"].astype(str).tolist())
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels, ids))
    if training and not cache:  # file names are cheap to shuffle in full; cached series are shuffled below
        dataset = dataset.shuffle(len(exams), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda path, label, exam: (series_input(_load_series(path), depth, size), label, exam),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if cache:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(min(len(exams), 256), seed=seed, reshuffle_each_iteration=True)
    if training:
        dataset = dataset.repeat()
    if not with_ids:
        dataset = dataset.map(lambda image, label, exam: (image, label))
    dataset = dataset.batch(batch_size, drop_remainder=training)
    if training and augment is not None:
        dataset = dataset.map(lambda image, label: (augment(image), label), num_parallel_calls=tf.data.AUTOTUNE)
    return with_pipeline_options(dataset.prefetch(tf.data.AUTOTUNE), tf.data.experimental.AutoShardPolicy.DATA)


def splits_table(splits: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per row used, ``split, id, label, copy, path``, to write as ``splits.csv``."""
    parts = [table.assign(split=name, copy=table["copy"] if "copy" in table else 0) for name, table in splits]
    return pd.concat(parts, ignore_index=True)[["split", "id", "label", "copy", "path"]]


def held_out_exams(model_path: str | Path) -> pd.DataFrame:
    """The validation rows (``id, path, label``) a training run held out, from its ``splits.csv``."""
    path = ModelFolder(model_path).splits
    table = read_csv_columns(path, ["split", "id", "path", "label"])
    table = table[table["split"] == "validation"]
    if table.empty:
        raise CsvError(f"{path}: has no validation rows")
    return table.assign(label=table["label"].astype(int))[["id", "path", "label"]].reset_index(drop=True)
