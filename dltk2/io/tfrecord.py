"""TFRecord shards of encoded 2D images with class labels, written atomically and read with native ops.

Feature keys (TF-slim's image classification layout): ``image/encoded`` (PNG or JPEG bytes),
``image/format``, ``image/height``, ``image/width``, ``image/channels``, ``image/class/label`` (int),
``image/class/text`` and ``image/filename``, plus optional ``image/patient_id``.

Each shard is written to a temporary name in the output folder and renamed when complete, so a
conversion killed half-way never leaves a half shard under a final name. A conversion's shards
together are a record set with a manifest (:mod:`dltk2.io.record_set`); a glob that matches shards
of a set its manifest does not list is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import tensorflow as tf

from dltk2.io.atomic import atomic_destination
from dltk2.io.pipeline import with_pipeline_options

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string, default_value="png"),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/channels": tf.io.FixedLenFeature([], tf.int64, default_value=1),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "image/class/text": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/patient_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def _bytes(value: bytes | str) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode()
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def image_example(encoded: bytes, image_format: str, height: int, width: int, channels: int, label: int,
                  text: str, filename: str, patient_id: str = "") -> tf.train.Example:
    """One ``tf.train.Example`` with the feature keys of this module's docstring."""
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": _bytes(encoded), "image/format": _bytes(image_format),
        "image/height": _int(height), "image/width": _int(width), "image/channels": _int(channels),
        "image/class/label": _int(label), "image/class/text": _bytes(text), "image/filename": _bytes(filename),
        "image/patient_id": _bytes(patient_id),
    }))


def write_shards(examples: Sequence[tf.train.Example], output_dir: str | Path, name: str,
                 num_shards: int = 1, suffix: str = "") -> list[Path]:
    """Writes ``<name>-00000-of-0000N<suffix>.tfrecord`` shards, each atomically; returns their paths.

    Examples go round-robin over the shards (so every shard holds a mix when the input is shuffled).
    A conversion writes them through :func:`dltk2.io.record_set.write_record_set`, which names them
    by its set (``suffix``) and commits them with a manifest.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(num_shards):
        final = output_dir / f"{name}-{shard:05d}-of-{num_shards:05d}{suffix}.tfrecord"
        with atomic_destination(final) as temporary, tf.io.TFRecordWriter(str(temporary)) as writer:
            for example in examples[shard::num_shards]:
                writer.write(example.SerializeToString())
        paths.append(final)
    return paths


def parse_image_example(serialized: tf.Tensor, channels: int = 1, dtype: tf.DType = tf.uint8) -> dict:
    """Parses one serialized example and decodes its image (PNG or JPEG) with native ops.

    Returns:
        The parsed features with ``image`` added: (height, width, channels) of ``dtype`` (uint8, or
        uint16 for 16-bit PNGs).
    """
    features = tf.io.parse_single_example(serialized, FEATURES)
    image = tf.io.decode_image(features["image/encoded"], channels=channels, dtype=dtype, expand_animations=False)
    features["image"] = tf.ensure_shape(image, [None, None, channels])
    return features


def glob_shards(pattern: str | Path) -> list[str]:
    """The files a glob matches, sorted; refused if they include shards a record set's manifest does not list.

    Raises:
        FileNotFoundError: Nothing matches.
        DataError: A matched shard left by an interrupted or earlier conversion, named
            (:meth:`dltk2.io.record_set.RecordSet.check`).
    """
    from dltk2.io.record_set import record_sets_of

    paths = sorted(tf.io.gfile.glob(str(pattern)))
    if not paths:
        raise FileNotFoundError(f"{pattern}: no TFRecord files")
    record_sets_of(paths)
    return paths


def image_dataset(files: str | Iterable[str], channels: int = 1, dtype: tf.DType = tf.uint8) -> tf.data.Dataset:
    """A dataset of parsed examples (see :func:`parse_image_example`) from shard files or a glob pattern.

    A pattern goes through :func:`glob_shards`.
    """
    if isinstance(files, (str, Path)):
        paths = glob_shards(files)
    else:
        paths = [str(path) for path in files]
    return with_pipeline_options(tf.data.TFRecordDataset(paths).map(
        lambda record: parse_image_example(record, channels, dtype), num_parallel_calls=tf.data.AUTOTUNE))


def label_counts(files: str | Iterable[str]) -> Mapping[int, int]:
    """How many examples of each ``image/class/label`` the shards hold."""
    paths = glob_shards(files) if isinstance(files, (str, Path)) else [str(f) for f in files]
    labels = tf.data.TFRecordDataset(paths).map(
        lambda record: tf.io.parse_single_example(record, {"image/class/label": FEATURES["image/class/label"]}))
    counts: dict[int, int] = {}
    for features in labels:  # the images are not decoded
        label = int(features["image/class/label"])
        counts[label] = counts.get(label, 0) + 1
    return counts
