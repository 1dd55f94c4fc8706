"""A conversion's TFRecord shards as one complete, self-describing set, replaced atomically.

Converting twice into one folder (another ``--num_shards`` or ``--seed``), or a kill during a
conversion over an earlier one, used to leave the shards of both; training's glob read them all:
twice the images, and patients on both sides of the split. A conversion is now a *record set*:

* its shards carry the set's id in their names (``<name>_<split>-00000-of-00002-<id>.tfrecord``),
  so a new conversion never overwrites a shard of the set being read;
* ``<name>.manifest.json``, written atomically after the last shard, is the commit: it lists every
  shard with its size, SHA-256 and example count, each split's examples per label and patients,
  and what made the split (seed, fractions, source folder...). Until it is renamed into place the
  old set is the one that is read; once it is, the old set's shards are deleted;
* readers take the shards the manifest lists, and check their sizes (and on request their SHA-256)
  against it; a missing or changed one is refused by name. A shard of the set's naming that the
  manifest does not list (the finished shards of a conversion killed before its commit, or an
  older converter's) is passed over with a warning by readers of the manifest, and refused by name
  where a glob would read it. The next conversion deletes it. Only one conversion writes into a
  folder at a time (:mod:`dltk2.io.locks`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import tensorflow as tf

from dltk2.errors import DataError
from dltk2.io.atomic import write_text_atomically
from dltk2.io.locks import locked_folder
from dltk2.io.tfrecord import write_shards
from dltk2.model_folder import ModelFolder

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "dltk2 record set"
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


def manifest_path(folder: str | Path, name: str) -> Path:
    """``<folder>/<name>.manifest.json``."""
    return Path(folder) / f"{name}.manifest.json"


STANDARD_SPLITS = ("train", "validation", "test")


def shard_pattern(name: str, splits: Iterable[str] = ()) -> re.Pattern:
    """File names of the shards of ``name``: of its ``splits`` and the standard ones, any set or none.

    Only named splits: ``chest_small-00000-of-00001.tfrecord`` is another set's shard, not a
    ``small`` split of ``chest``.
    """
    names = sorted({*STANDARD_SPLITS, *(split for split in splits if split)})
    alternatives = "|".join(re.escape(split) for split in names)
    return re.compile(rf"^{re.escape(name)}(_({alternatives}))?-\d{{5}}-of-\d{{5}}(-[0-9a-f]{{8,}})?\.tfrecord$")


def _split_prefix(name: str, split: str) -> str:
    return f"{name}_{split}" if split else name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _feature_value(example: tf.train.Example, key: str):
    feature = example.features.feature.get(key)
    if feature is None:
        return None
    values = feature.int64_list.value or feature.bytes_list.value
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else int(value)


@dataclasses.dataclass(frozen=True)
class RecordSet:
    """A committed record set: its folder, name and manifest."""

    folder: Path
    name: str
    manifest: dict

    @property
    def splits(self) -> list[str]:
        """The split names (``""`` for a set written without a split)."""
        return list(self.manifest["splits"])

    def files(self, split: str) -> list[Path]:
        """The shards of ``split``; an empty list for a split this set does not have."""
        entry = self.manifest["splits"].get(split)
        return [] if entry is None else [self.folder / shard["file"] for shard in entry["shards"]]

    def examples(self, split: str) -> int:
        """How many examples ``split`` holds (0 for a split this set does not have)."""
        entry = self.manifest["splits"].get(split)
        return 0 if entry is None else int(entry["examples"])

    def label_counts(self, split: str) -> dict[int, int]:
        """Examples per ``image/class/label`` in ``split``, from the manifest (nothing is read)."""
        entry = self.manifest["splits"].get(split, {})
        return {int(label): int(count) for label, count in entry.get("label_counts", {}).items()}

    def check(self, checksums: bool = False) -> "RecordSet":
        """Checks every listed shard against the manifest.

        Args:
            checksums: Also compare every shard's SHA-256 (reads every byte; sizes alone catch a
                truncated or replaced shard of another size).

        Raises:
            DataError: A missing shard, or one of another size or checksum, named.
        """
        for entry in self.manifest["splits"].values():
            for shard in entry["shards"]:
                path = self.folder / shard["file"]
                if not path.is_file():
                    raise DataError(f"{path}: missing from the record set of {manifest_path(self.folder, self.name)}")
                if path.stat().st_size != shard["bytes"]:
                    raise DataError(f"{path}: {path.stat().st_size} bytes, but {self.name}.manifest.json recorded "
                                    f"{shard['bytes']} (changed or truncated since the conversion)")
                if checksums and _sha256(path) != shard["sha256"]:
                    raise DataError(f"{path}: content differs from its SHA-256 in {self.name}.manifest.json")
        return self

    def strays(self) -> list[Path]:
        """Shards of this set's naming in its folder that its manifest does not list."""
        listed = {shard["file"] for entry in self.manifest["splits"].values() for shard in entry["shards"]}
        pattern = shard_pattern(self.name, self.splits)
        return [path for path in sorted(self.folder.iterdir()) if pattern.match(path.name) and path.name not in listed]


def _stray_message(path: Path, name: str) -> str:
    return (f"{path}: a shard that {name}.manifest.json does not list (left by an interrupted or an earlier "
            "conversion); convert again, which removes it, or delete it")


def _trained_on(model_path: str | Path) -> dict:
    """The ``data`` a model folder's run configuration records (``record_set``, ``data_dir``); {} if none.

    Schema 2 keeps them under ``data``; folders from before it at the top level.
    """
    try:
        config = json.loads(ModelFolder(model_path).run_config_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict):
        return {}
    return config.get("data", {}) if "schema" in config else config


def check_same_record_set(model_path: str | Path, record_set: RecordSet) -> None:
    """Refuses to resume a model folder on another record set than the one it was trained on.

    A conversion made again (another seed, more images) draws another split: resuming on it would
    train on images that the first split held out. The model folder's ``run_config.json`` records
    the set (``record_set``); a folder without one (new, or from before record sets) passes.

    Raises:
        DataError: The folder was trained on another set.
    """
    trained_on = _trained_on(model_path).get("record_set")
    if trained_on and trained_on != record_set.manifest["set_id"]:
        raise DataError(f"{model_path}: trained on record set {trained_on}, but {manifest_path(record_set.folder, record_set.name)} "
                        f"is set {record_set.manifest['set_id']} (converted again?); another split could put held-out "
                        "images into training: use --restart, or the data it was trained on")


def check_held_out(model_path: str | Path, record_set: RecordSet) -> None:
    """Refuses to score a model on a split of a set converted again in the folder it was trained from.

    A model trained on set A of ``data/tfrecords`` and scored on the test split of set B of the same
    folder would be scored on images A trained on. Sets in other folders (external data) pass.

    Raises:
        DataError: Same folder and name, another set.
    """
    data = _trained_on(model_path)
    trained_on, data_dir = data.get("record_set"), data.get("data_dir")
    if trained_on and data_dir and Path(data_dir).resolve() == record_set.folder.resolve() \
            and trained_on != record_set.manifest["set_id"]:
        raise DataError(f"{manifest_path(record_set.folder, record_set.name)}: set {record_set.manifest['set_id']}, "
                        f"but {model_path} was trained on set {trained_on} of this folder; its split differs, so "
                        "the scores would include training images")


def record_sets_of(paths: Iterable[str | Path]) -> list[RecordSet]:
    """The record sets (checked) whose shards are among ``paths``: those of any manifest in their folders.

    Files of no record set's naming, or in folders without a manifest (TFRecords from elsewhere),
    belong to none.

    Raises:
        DataError: A set whose shards do not match its manifest, or a stray shard among ``paths``, named.
    """
    by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        path = Path(path)
        by_folder.setdefault(path.parent, []).append(path)
    sets = []
    for folder, files in by_folder.items():
        for manifest in sorted(folder.glob("*.manifest.json")):
            name = manifest.name[: -len(".manifest.json")]
            try:
                splits = list(json.loads(manifest.read_text()).get("splits", {}))
            except (OSError, ValueError, AttributeError):
                splits = []
            pattern = shard_pattern(name, splits)
            if any(pattern.match(path.name) for path in files):
                record_set = read_record_set(folder, name, warn_strays=False)
                matched = {path.name for path in files}
                strays = [path for path in record_set.strays() if path.name in matched]  # a glob would read them
                if strays:
                    raise DataError(_stray_message(strays[0], name))
                sets.append(record_set)
    return sets


def read_record_set(folder: str | Path, name: str, checksums: bool = False, warn_strays: bool = True) -> RecordSet:
    """The record set ``name`` in ``folder``, checked (see :meth:`RecordSet.check`).

    Shards its manifest does not list are not read; ``warn_strays`` says so in one line.

    Raises:
        DataError: No manifest (shards written by an older converter, or none), a manifest that is
            not one, or shards that do not match it.
    """
    folder = Path(folder)
    path = manifest_path(folder, name)
    if not path.is_file():
        stray = sorted(p.name for p in folder.glob("*.tfrecord") if shard_pattern(name).match(p.name)) \
            if folder.is_dir() else []
        found = f" ({len(stray)} shard(s) without one, from an older converter?)" if stray else ""
        raise DataError(f"{path}: no such record set manifest{found}; convert the data (again)")
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("splits"), dict):
            raise ValueError("not a record set manifest")
        if manifest.get("version", 0) > MANIFEST_VERSION:
            raise ValueError(f"manifest version {manifest['version']} is newer than this dltk2 reads "
                             f"({MANIFEST_VERSION})")
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable record set manifest ({error})") from None
    record_set = RecordSet(folder, name, manifest).check(checksums)
    strays = record_set.strays() if warn_strays else []
    if strays:
        logger.warning("%s", _stray_message(strays[0], name))
        print(f"warning: {len(strays)} shard(s) in {folder} that {name}.manifest.json does not list (left by an "
              f"interrupted or an earlier conversion, e.g. {strays[0].name}): not read")
    return record_set


def write_record_set(folder: str | Path, name: str,
                     splits: Mapping[str, Sequence[tf.train.Example] | Callable[[], Sequence[tf.train.Example]]],
                     num_shards: int = 1, description: Mapping | None = None,
                     tables: Iterable[str | Path] = (), companions: Mapping[str, str] | None = None) -> RecordSet:
    """Writes a complete record set and makes it the folder's set ``name`` in one rename.

    Args:
        folder: The output folder (created).
        name: The set's name: shards are ``<name>_<split>-NNNNN-of-NNNNN-<id>.tfrecord`` (``<name>-...``
            for the split ``""``).
        splits: Split name -> its examples, in the order to write (round-robin over the shards), or a
            function that makes them (called when the split is written, so one split at a time is
            held in memory).
        num_shards: Shards per split (fewer for a split with fewer examples; an empty split has none).
        description: What made the split (seed, fractions, source...), stored in the manifest.
        tables: Files written beside the set before this call (``split.csv``); their SHA-256 goes
            into the manifest, tying them to this set.
        companions: Split -> the one split whose patients it may share (a fold's flipped copies
            beside the fold: they train and are held out together); every other pair shares none.

    Returns:
        The committed set.

    Raises:
        ResourceError: Another conversion is writing into ``folder``.
        ValueError: A patient in two splits (``image/patient_id``): a bug of the split.
    """
    folder = Path(folder)
    with locked_folder(folder, "record set folder"):
        try:
            previous_splits = list(json.loads(manifest_path(folder, name).read_text())["splits"])
        except (OSError, ValueError, KeyError, TypeError):
            previous_splits = []
        set_id = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)
        patients: dict[str, set[str]] = {}
        entries = {}
        for split, examples in splits.items():
            examples = examples() if callable(examples) else examples
            labels: dict[int, int] = {}
            patients[split] = set()
            for example in examples:
                label = _feature_value(example, "image/class/label")
                labels[label] = labels.get(label, 0) + 1
                patient = _feature_value(example, "image/patient_id")
                if patient:
                    patients[split].add(patient)
            shards = min(num_shards, len(examples))
            paths = write_shards(examples, folder, _split_prefix(name, split), shards, suffix=f"-{set_id}") \
                if shards else []
            entries[split] = {
                "examples": len(examples),
                "label_counts": {str(label): count for label, count in sorted(labels.items())},
                "patients": len(patients[split]),
                "shards": [{"file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path),
                            "examples": len(examples[index::shards])} for index, path in enumerate(paths)],
            }
        names = list(patients)
        paired = {frozenset(pair) for pair in (companions or {}).items()}
        shared = {(a, b): len(patients[a] & patients[b]) for i, a in enumerate(names) for b in names[i + 1:]
                  if frozenset((a, b)) not in paired}
        if any(shared.values()):
            raise ValueError(f"patients in two splits: {shared}")
        manifest = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "name": name, "set_id": set_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "description": dict(description or {}),
            "patients_in_two_splits": 0, "splits": entries,
            "tables": {Path(table).name: _sha256(Path(table)) for table in tables},
        }
        write_text_atomically(manifest_path(folder, name), json.dumps(manifest, indent=1, sort_keys=True))
        committed = {shard["file"] for entry in entries.values() for shard in entry["shards"]}
        pattern = shard_pattern(name, [*entries, *previous_splits])
        for path in folder.iterdir():  # the earlier sets' shards, and temporaries of killed conversions
            if (pattern.match(path.name) and path.name not in committed) or (
                    path.name.startswith(".") and pattern.match(path.name[1:].split(".tfrecord.")[0] + ".tfrecord")):
                path.unlink(missing_ok=True)
    return RecordSet(folder, name, manifest)
